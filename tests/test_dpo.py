"""Preference optimisation without Ray: the three losses and TRL's metrics against numbers computed by
hand, the loss's invariance to how a step's pairs are cut into micro-batches and ranks (at the loss and
through a model), the prompt / completion token split (text, chat with and without a template, a
template that breaks the prefix, truncation), and the config's checks (launch/dpo.py exits 2)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rltrain.config import ConfigError
from rltrain.config.dpo import load_dpo
from rltrain.data.datasets import DataError
from rltrain.dpo.data import encode_pairs, pack_pairs, reference_rows, split_side, summed, truncate
from rltrain.dpo.losses import preference_loss, preference_metrics
from rltrain.rm.preferences import PreferencePair
from rltrain.rm.train import rank_shards
from rltrain.workers.dpo_learner import pair_loss

ROOT = Path(__file__).resolve().parent.parent
T = torch.tensor


def _sp(x: float) -> float:
    """-log sigmoid(x), by hand."""
    return math.log(1 + math.exp(-x))


# two pairs: policy and reference summed log-probs, completion lengths
LOGP_C, LOGP_R, REF_C, REF_R = T([-3.0, -2.0]), T([-5.0, -1.0]), T([-4.0, -2.0]), T([-4.0, -2.0])
LEN_C, LEN_R = T([2.0, 1.0]), T([4.0, 1.0])


def test_sigmoid_dpo_loss_and_rewards_by_hand():
    t = preference_loss(LOGP_C, LOGP_R, LEN_C, LEN_R, REF_C, REF_R, loss="sigmoid", beta=0.1)
    # pair 0: 0.1 * ((-3 + 4) - (-5 + 4)) = 0.2; pair 1: 0.1 * ((-2 + 2) - (-1 + 2)) = -0.1
    assert t.losses.tolist() == pytest.approx([_sp(0.2), _sp(-0.1)])
    assert t.losses.tolist() == pytest.approx([0.5981388693, 0.7443966600])
    assert t.chosen_rewards.tolist() == pytest.approx([0.1, 0.0])
    assert t.rejected_rewards.tolist() == pytest.approx([-0.1, 0.1])


def test_ipo_loss_by_hand_token_mean_and_summed():
    # pair 0: log-ratios 1 (2 tokens) and -1 (4 tokens): per-token h = 0.5 + 0.25 = 0.75, summed h = 2
    # pair 1: log-ratios 0 and 1 (1 token each): h = -1 either way
    t = preference_loss(LOGP_C, LOGP_R, LEN_C, LEN_R, REF_C, REF_R, loss="ipo", beta=0.1)
    assert t.losses.tolist() == pytest.approx([(0.75 - 5) ** 2, (-1 - 5) ** 2])  # 1 / (2 * 0.1) = 5
    t = preference_loss(LOGP_C, LOGP_R, LEN_C, LEN_R, REF_C, REF_R, loss="ipo", beta=0.5)
    assert t.losses.tolist() == pytest.approx([0.0625, 4.0])  # (0.75 - 1)^2, (-1 - 1)^2
    t = preference_loss(LOGP_C, LOGP_R, LEN_C, LEN_R, REF_C, REF_R, loss="ipo", beta=0.5, token_mean=False)
    assert t.losses.tolist() == pytest.approx([1.0, 4.0])  # (2 - 1)^2
    assert t.chosen_rewards.tolist() == pytest.approx([0.5, 0.0])  # beta x summed log-ratio, as TRL logs for IPO


def test_simpo_loss_by_hand_without_a_reference():
    t = preference_loss(LOGP_C, LOGP_R, LEN_C, LEN_R, loss="simpo", beta=2.0, gamma=0.5)
    # pair 0: 2 * -3/2 - 2 * -5/4 - 0.5 = -3 + 2.5 - 0.5 = -1; pair 1: 2 * -2 - 2 * -1 - 0.5 = -2.5
    assert t.losses.tolist() == pytest.approx([_sp(-1.0), _sp(-2.5)])
    assert t.chosen_rewards.tolist() == pytest.approx([-3.0, -4.0]) and t.rejected_rewards.tolist() == pytest.approx([-2.5, -2.0])
    with pytest.raises(ValueError, match="reference"):
        preference_loss(LOGP_C, LOGP_R, LEN_C, LEN_R, loss="sigmoid")
    with pytest.raises(ValueError, match="sigmoid, ipo, simpo"):
        preference_loss(LOGP_C, LOGP_R, LEN_C, LEN_R, REF_C, REF_R, loss="hinge")


def test_metrics_by_hand_with_a_tie_and_a_padding_pair():
    import algorithms

    logp_c, logp_r = T([-3.0, -2.0, -1.0, -9.0]), T([-5.0, -1.0, -1.0, -9.0])
    ref = T([-4.0, -2.0, -1.0, -9.0])
    t = preference_loss(logp_c, logp_r, torch.ones(4), torch.ones(4), ref, T([-4.0, -2.0, -1.0, -9.0]), beta=0.1)
    m = algorithms.reduce_metrics([preference_metrics(t, logp_c, logp_r, T([1 / 3, 1 / 3, 1 / 3, 0.0]))])
    # rewards (chosen, rejected): (0.1, -0.1), (0, 0.1), (0, 0) a tie, and a padding pair of weight 0
    assert m["rewards/chosen"] == pytest.approx(0.1 / 3) and m["rewards/rejected"] == pytest.approx(0.0)
    assert m["rewards/accuracies"] == pytest.approx(1 / 3)  # the tie is not a win
    assert m["rewards/margins"] == pytest.approx((0.2 - 0.1 + 0.0) / 3)
    assert m["logps/chosen"] == pytest.approx(-2.0) and m["logps/rejected"] == pytest.approx(-7 / 3)
    assert m["loss"] == pytest.approx((_sp(0.2) + _sp(-0.1) + _sp(0.0)) / 3)


@pytest.mark.parametrize("loss", ["sigmoid", "ipo", "simpo"])
def test_step_loss_and_gradient_do_not_depend_on_micro_batch_and_rank_cuts(loss):
    """Weights 1/N: hand-made uneven micro-batches, and rank_shards' equal shards with zero-weight padding
    pairs, sum to the full batch's mean loss and its gradient."""
    g = torch.Generator().manual_seed(0)
    n = 7
    logp = (-5 * torch.rand(n, 2, generator=g, dtype=torch.float64)).requires_grad_()
    ref, lens = -5 * torch.rand(n, 2, generator=g, dtype=torch.float64), torch.randint(1, 6, (n, 2), generator=g)
    w = torch.full((n,), 1.0 / n, dtype=torch.float64)

    def part(idx, weights):
        t = preference_loss(logp[idx, 0], logp[idx, 1], lens[idx, 0], lens[idx, 1], ref[idx, 0], ref[idx, 1],
                            loss=loss, beta=0.3, gamma=0.2)
        return (t.losses * weights).sum()

    full = part(torch.arange(n), w)
    (g_full,) = torch.autograd.grad(full, logp)
    assert full.item() == pytest.approx(preference_loss(logp[:, 0], logp[:, 1], lens[:, 0], lens[:, 1], ref[:, 0],
                                                        ref[:, 1], loss=loss, beta=0.3, gamma=0.2).losses.mean().item())
    hand = sum(part(torch.tensor(c), w[c]) for c in ([0, 1, 2], [3], [4, 5, 6]))
    padded = torch.cat([torch.arange(n), torch.zeros(1, dtype=torch.long)])  # 2 ranks x 4: pair 0 again, weight 0
    pw = torch.cat([w, torch.zeros(1, dtype=torch.float64)])
    ranks = sum(part(padded[a:b], pw[a:b]) for a, b in ((0, 3), (3, 4), (4, 6), (6, 8)))
    for split in (hand, ranks):
        (g_split,) = torch.autograd.grad(split, logp)
        assert split.item() == pytest.approx(full.item(), rel=1e-12)
        assert torch.allclose(g_split, g_full, rtol=1e-10, atol=1e-14)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rltrain.toy.tiny_model import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("tiny"))
    return AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)


def test_through_a_model_rank_shards_and_micro_batches_keep_loss_and_gradient(tiny):
    """`pair_loss` (what each DPO learner micro-batch computes) over rank_shards' cuts (2 ranks, micro-batches
    of 2 pairs, shared prompts) sums to the one-batch loss and gradient (no prompt sharing)."""
    tok, model = tiny
    pairs = [PreferencePair(f"rev {a}{b}?", f"{b}{a}", f"{a}{a}{b}", "x") for a, b in zip("1234567", "9876543")]
    enc, _ = encode_pairs(tok, pairs, 64, "train")
    ref = -torch.rand(len(pairs), 2, generator=torch.Generator().manual_seed(1)) * 3
    batch = pack_pairs(enc, list(range(len(pairs))), ref, torch.full((len(pairs),), 1 / len(pairs)), tok.pad_token_id)
    spec = {"loss": "sigmoid", "beta": 0.5, "gamma": 0.0, "token_mean": True}
    model.zero_grad()
    full, m_full = pair_loss(model, batch, spec, share_prompts=False)
    full.backward()
    g_full = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    total, metrics = 0.0, []
    for shard, cuts in rank_shards(batch, ranks=2, micro=2):
        for a, b in zip(cuts[:-1], cuts[1:]):
            loss, m = pair_loss(model, shard.index(torch.arange(a, b)), spec, share_prompts=True)
            loss.backward()
            total += loss.item()
            metrics.append(m)
    assert total == pytest.approx(full.item(), rel=1e-5)
    for p, g in zip(model.parameters(), g_full):
        assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-6)
    import algorithms

    assert algorithms.reduce_metrics(metrics)["loss"] == pytest.approx(algorithms.reduce_metrics([m_full])["loss"], rel=1e-5)


def test_text_pair_split_appends_eos_and_packs_for_the_reference(tiny):
    tok, _ = tiny
    prompt_ids = tok("rev 123?")["input_ids"]
    p, c = split_side(tok, "rev 123?", "321", "row")
    assert p == prompt_ids and tok.decode(c) == "321<eos>" and c[-1] == tok.eos_token_id
    assert split_side(tok, "rev 123?", "321<eos>", "row")[1] == c  # not twice
    enc, cut = encode_pairs(tok, [PreferencePair("rev 123?", "321", "3210 so ok", "rambling")], 64, "test")
    (pc, cc), (pr, cr) = enc[0]
    assert cut == 0 and pc == pr == prompt_ids and tok.decode(cr) == "3210 so ok<eos>"
    batch = pack_pairs(enc * 2, [0, 1], None, torch.full((2,), 0.5), tok.pad_token_id)
    assert batch.input_ids.shape == (2, 2, len(pr) + len(cr)) and batch.resp_start.tolist() == [[len(pc)] * 2] * 2
    rows = reference_rows(batch, tok.pad_token_id)
    assert rows.group_ids.tolist() == [0, 0, 1, 1] and rows.response_ids[1, :len(cr)].tolist() == cr
    logp = -torch.ones(4, batch.response_ids.shape[-1])
    assert summed(logp, batch).tolist() == [[-len(cc), -len(cr)]] * 2  # padding tokens count for nothing
    (p2, c2), was_cut = truncate((prompt_ids, cr), 8)
    assert was_cut and len(p2) + len(c2) == 8 and c2 == cr[:7] and p2 == prompt_ids[-1:]
    (p3, c3), _ = truncate((prompt_ids, cc), len(prompt_ids) + len(cc) - 2)
    assert c3 == cc and p3 == prompt_ids[2:]  # the prompt loses tokens from the left


CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


def test_chat_pair_split_with_a_template_without_one_and_a_template_that_breaks_the_prefix(tiny):
    tok, _ = tiny
    prompt = [{"role": "user", "content": "rev 12?"}]
    chosen, rejected = [{"role": "assistant", "content": "21"}], [{"role": "assistant", "content": "12"}]
    plain = split_side(tok, prompt, chosen, "row")  # no template: "role: content" lines, then the reply text + EOS
    assert tok.decode(plain[0]) == "user: rev 12?\nassistant: " and tok.decode(plain[1]) == "21<eos>"
    tok.chat_template = CHAT_TEMPLATE
    try:
        enc, _ = encode_pairs(tok, [PreferencePair(prompt, chosen, rejected)], 64, "train")
        (pc, cc), (pr, cr) = enc[0]
        assert tok.decode(pc) == "<user>rev 12?</s><assistant>" and pc == pr
        assert tok.decode(cc) == "21</s>" and tok.decode(cr) == "12</s>"  # the template closes the turn: no EOS added
        tok.chat_template = CHAT_TEMPLATE.replace("<assistant>{% endif %}", "<assistant>\n{% endif %}")
        bad = [PreferencePair([{"role": "user", "content": "x"}], chosen, rejected),
               PreferencePair(prompt, chosen, rejected)]
        with pytest.raises(DataError, match=r"train pair 0 \(prompt .*\), chosen: the prompt's tokens are not a prefix"):
            encode_pairs(tok, bad, 64, "train")
    finally:
        tok.chat_template = None


def test_config_is_checked_at_load_and_the_launcher_exits_2_with_one_line(tmp_path):
    cfg = load_dpo(str(ROOT / "configs" / "dpo_toy.yaml"))
    assert cfg.model_path is None and cfg.dpo.loss == "sigmoid" and cfg.data.task == "rev4"
    with pytest.raises(ConfigError, match="dpo.los"):
        load_dpo(None, {"dpo.los": "ipo"})
    with pytest.raises(ConfigError, match="dpo.loss"):
        load_dpo(None, {"dpo.loss": "hinge"})
    with pytest.raises(ConfigError, match="SimPO uses no reference"):
        load_dpo(None, {"dpo.loss": "simpo", "dpo.reference_path": "/x"})
    with pytest.raises(ConfigError, match="learner.max_tokens_per_micro_batch"):  # would be ignored: refused
        load_dpo(None, {"learner.max_tokens_per_micro_batch": 512})
    proc = subprocess.run([sys.executable, str(ROOT / "launch" / "dpo.py"), "--config", "configs/dpo_toy.yaml",
                           "train.stepz=3"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("config error:") and "train.stepz" in lines[0], proc.stderr
    proc = subprocess.run([sys.executable, str(ROOT / "launch" / "dpo.py"), "--resume", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "no complete checkpoint" in proc.stderr, proc.stderr

"""Unit tests of the runtime's pure pieces, with numbers computed by hand."""

from __future__ import annotations

import pytest
import torch

from rltrain.data.passk import ks_for, pass_at_k
from rltrain.workers.logprobs import pack_rows, response_logprobs
from rltrain.workers.sharding import split_indices
from rltrain.workers.weight_sync import iter_buckets


def test_pass_at_k_by_hand():
    # n=4, c=1: pass@1 = 1 - C(3,1)/C(4,1) = 1 - 3/4 = 0.25; pass@2 = 1 - C(3,2)/C(4,2) = 1 - 3/6 = 0.5
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 3, 2) == 1.0  # n-c=1 < k=2
    assert ks_for(16) == [1, 2, 4, 8, 16] and ks_for(3) == [1, 2]
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 4)


def test_buckets_respect_size_and_keep_order():
    named = [(f"p{i}", torch.zeros(n)) for i, n in enumerate([10, 10, 30, 5, 5])]  # float32: 4 bytes each
    buckets = list(iter_buckets(iter(named), bucket_bytes=80))  # 20 floats per bucket
    assert [[n for n, _ in b] for b in buckets] == [["p0", "p1"], ["p2"], ["p3", "p4"]]  # p2 alone (120 B > 80)


def test_pack_rows_aligns_response_positions():
    packed = pack_rows([[5, 6, 7], [8]], [[1, 2], [3, 4, 9]], pad_id=0)
    assert packed["input_ids"].tolist() == [[5, 6, 7, 1, 2], [8, 3, 4, 9, 0]]
    assert packed["resp_start"].tolist() == [3, 1]
    assert packed["response_ids"].tolist() == [[1, 2, 0], [3, 4, 9]]
    assert packed["response_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]


class _Bigram(torch.nn.Module):
    """logits at position i depend only on token i (hidden state = one-hot of the token, output layer
    = the table): an exact reference for the gather logic."""

    def __init__(self, vocab: int = 12):
        super().__init__()
        self.vocab = vocab
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab))
        self.head = torch.nn.Linear(vocab, vocab, bias=False)
        self.head.weight = torch.nn.Parameter(self.table.detach().T.clone())

    def get_output_embeddings(self):
        return self.head

    def forward(self, input_ids, attention_mask=None, use_cache=False, output_hidden_states=False, logits_to_keep=0):
        hidden = torch.nn.functional.one_hot(input_ids, self.vocab).float()
        return type("Out", (), {"hidden_states": (hidden,), "logits": self.head(hidden[:, -1:])})


def test_response_logprobs_match_manual_gather():
    torch.manual_seed(0)
    model = _Bigram()
    packed = pack_rows([[5, 6, 7], [8]], [[1, 2], [3, 4, 9]], pad_id=0)
    logp, ent = response_logprobs(model, packed["input_ids"], packed["attention_mask"], packed["resp_start"],
                                  packed["response_ids"], temperature=2.0, with_entropy=True)
    table = torch.log_softmax(model.table.detach() / 2.0, -1)
    # row 0: token 1 predicted from token 7, token 2 from token 1; row 1: 3<-8, 4<-3, 9<-4
    assert logp[0, 0].item() == pytest.approx(table[7, 1].item(), abs=1e-6)
    assert logp[0, 1].item() == pytest.approx(table[1, 2].item(), abs=1e-6)
    assert logp[1, 2].item() == pytest.approx(table[4, 9].item(), abs=1e-6)
    assert ent[1, 0].item() == pytest.approx(-(table[8].exp() * table[8]).sum().item(), abs=1e-5)


def test_split_indices_even_and_group_aligned():
    assert [p.tolist() for p in split_indices(5, 2)] == [[0, 1], [2, 3, 4]]  # cut at round(2.5) = 2
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    # target cut at 4 -> nearest group start is 3 (starts: 0, 3, 5)
    assert [p.tolist() for p in split_indices(8, 2, groups)] == [[0, 1, 2], [3, 4, 5, 6, 7]]
    assert [p.tolist() for p in split_indices(1, 2)] == [[], [0]]  # an empty shard gets zero-weight padding


def test_micro_batch_plan_buckets_rows_by_length():
    from rltrain.workers.sharding import plan_micro_batches

    lengths = torch.tensor([3, 9, 4, 8, 2, 7])
    # rows only: longest first, 2 rows each -> (9, 8), (7, 4), (3, 2)
    order, cuts = plan_micro_batches(lengths, None, max_rows=2)
    assert order.tolist() == [1, 3, 5, 2, 0, 4] and cuts == [0, 2, 4, 6]
    # and at most 20 padded tokens: 9+9=18 ok, 3x9=27 no; 7,4 -> 2x7=14, 3x7=21 no; 3,2 -> 6
    order, cuts = plan_micro_batches(lengths, None, max_rows=8, max_tokens=20)
    assert order.tolist() == [1, 3, 5, 2, 0, 4] and cuts == [0, 2, 4, 6]
    order, cuts = plan_micro_batches(lengths, None, max_rows=8, max_tokens=5)  # every row alone (over budget alone)
    assert cuts == [0, 1, 2, 3, 4, 5, 6]
    # groups move whole: groups (3, 9), (4, 8), (2, 7) have longest rows 9, 8, 7
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    order, cuts = plan_micro_batches(lengths, groups, max_rows=4)
    assert order.tolist() == [0, 1, 2, 3, 4, 5] and cuts == [0, 4, 6]
    # split_groups (shared prompts): groups ranked 9, 8, 7, rows longest first inside each -> 1, 0, 3, 2, 5, 4,
    # cut every 3 rows: the middle group straddles the cut
    order, cuts = plan_micro_batches(lengths, groups, max_rows=3, split_groups=True)
    assert order.tolist() == [1, 0, 3, 2, 5, 4] and cuts == [0, 3, 6]
    assert plan_micro_batches(torch.zeros(0), None, 4) [1] == [0]


def test_ranks_get_equal_micro_batch_counts_padded_with_zero_weight_rows():
    from algorithms import RolloutBatch
    from rltrain.workers.sharding import rank_micro_batches

    packed = pack_rows([[1]] * 5, [[2] * k for k in (1, 5, 2, 4, 3)], pad_id=0)
    batch = RolloutBatch(response_ids=packed["response_ids"], response_mask=packed["response_mask"],
                         rewards=torch.zeros(5), group_ids=torch.arange(5), prompt_keys=list("abcde"),
                         input_ids=packed["input_ids"], attention_mask=packed["attention_mask"],
                         resp_start=packed["resp_start"])
    batch.loss_weights = batch.response_mask.clone()
    shards = [torch.tensor([0, 1, 2, 3]), torch.tensor([4])]
    (a, cuts_a), (b, cuts_b) = rank_micro_batches(batch, shards, max_rows=2, max_tokens=0, group_aligned=False)
    assert cuts_a == [0, 2, 4] and a.prompt_keys == ["b", "d", "c", "a"]  # lengths 6, 5 | 3, 2
    assert cuts_b == [0, 1, 2] and b.prompt_keys == ["e", "a"]  # one real row, one zero-weight pad row
    assert b.loss_weights[1].sum() == 0 and b.loss_weights[0].sum() == 3


def test_cpu_threads_split_cores_only_when_phases_overlap():
    from rltrain.config import load
    from rltrain.driver.flow.schedules import schedule_class
    from rltrain.workers.placement import cpu_threads

    def overlap(cfg):
        return schedule_class(cfg.trainer.schedule).overlaps_generation(cfg)

    sync = load(None, {"learner.num_ranks": 2})
    assert cpu_threads(sync, overlap(sync), cores=8) == (4, 8)  # one phase at a time: the engine takes all
    osf = load(None, {"trainer.schedule": "one_step_off"})
    assert cpu_threads(osf, overlap(osf), cores=2) == (1, 1)  # 1 learner + 1 worker at once
    assert overlap(load(None, {"trainer.schedule": "async", "trainer.max_staleness": 2}))
    assert not overlap(load(None, {"trainer.schedule": "async", "trainer.max_staleness": 0}))  # k = 0 is sync
    assert cpu_threads(load(None, {"trainer.schedule": "one_step_off", "learner.num_ranks": 2}), True, cores=6) == (2, 2)
    assert cpu_threads(load(None, {"trainer.schedule": "one_step_off", "rollout.threads": 3}), True, cores=2) == (1, 3)


def test_gradient_checkpointing_keeps_less_for_backward_and_the_same_gradient(default_model):
    """model.gradient_checkpointing: the bytes autograd saves for the backward drop, the gradient does not change."""
    from transformers import AutoModelForCausalLM

    from rltrain.workers.deepspeed_role import enable_gradient_checkpointing

    ids = torch.randint(3, 20, (8, 48), generator=torch.Generator().manual_seed(0))

    def run(checkpointing: bool) -> tuple[int, torch.Tensor]:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(default_model, dtype=torch.float32)
        model.train()
        if checkpointing:
            enable_gradient_checkpointing(model)
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t,
                                                      lambda t: t):
            loss = model(input_ids=ids, use_cache=False).logits.float().logsumexp(-1).mean()
        loss.backward()
        return sum(saved), model.get_input_embeddings().weight.grad.clone()

    plain_bytes, plain_grad = run(False)
    ckpt_bytes, ckpt_grad = run(True)
    print(f"saved for backward: {plain_bytes} B plain, {ckpt_bytes} B with checkpointing")
    assert ckpt_bytes < 0.8 * plain_bytes, (ckpt_bytes, plain_bytes)
    assert torch.allclose(plain_grad, ckpt_grad, atol=1e-6)


def test_reward_runner_weights_parts_and_drops_unscored_samples():
    from rltrain.config import load
    from rltrain.data import PromptRow
    from rltrain.driver.flow.rewards import RewardRunner

    cfg = load(None, ["reward.functions=[{name: exact_match}, {name: overlong, weight: 0.5, "
                      "params: {max_length: 4, cache_length: 2}}]"])
    runner = RewardRunner(cfg.reward)
    rows = [PromptRow("p", "12", {}, "a"), PromptRow("p", None, {}, "b")]  # row b has no answer: exact_match -> None
    total, parts = runner(["p", "p"], ["12", "1234567"], rows)
    # overlong (characters): "12" is within L_max - L_cache = 2 -> 0; "1234567" is past L_max = 4 -> -1
    assert parts == {"exact_match": [1.0, None], "overlong": [0.0, -1.0]}
    assert total == [1.0, None]  # row a: 1*1 + .5*0 ; row b: dropped, whatever the overlong part says


def test_chat_observation_wrapper_is_what_the_template_puts_around_a_tool_message():
    from transformers import AutoTokenizer

    from rltrain.driver.flow.multiturn import chat_observation_wrapper
    from rltrain.toy.tiny_model import build_tokenizer

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        build_tokenizer(d)
        tok = AutoTokenizer.from_pretrained(d)
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<eos>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    # the model's turn ends with the <eos> it generated; the template's "\n" after it comes with the tool turn
    assert chat_observation_wrapper(tok) == ("\n<|im_start|>tool\n", "<eos>\n<|im_start|>assistant\n")
    tok.chat_template = None
    with pytest.raises(ValueError, match="env.observation_format=chat: the tokenizer's chat template cannot render"):
        chat_observation_wrapper(tok)


def test_search_environment_parses_calls_and_answers_and_scores():
    from rltrain.data import PromptRow
    from rltrain.data.tasks import search_fact
    from rltrain.envs import StepResult, Turn
    from rltrain.envs.search import SearchEnv, parse_turn

    assert parse_turn("s ka\n") == ("search", "ka") and parse_turn("a 37") == ("answer", "37")
    assert parse_turn('<tool_call>{"name": "search", "arguments": {"query": "ka"}}</tool_call>') == ("search", "ka")
    assert parse_turn("so it is \\boxed{37}.") == ("answer", "37")
    assert parse_turn("hello") is None and parse_turn("<tool_call>{not json}</tool_call>") is None
    env = SearchEnv()
    row = PromptRow("ka?", search_fact(0, "ka"), {"entity": "ka", "world": 0}, "search:ka?")
    assert env.reset(row) is None
    history = [Turn("model", "s ka\n")]
    assert env.step(history) == StepResult(f"ka={search_fact(0, 'ka')}\n")
    assert env.step([Turn("model", "s zzz\n")]) == StepResult("zzz=none\n")  # not an entity
    assert env.step([Turn("model", "??")]) == StepResult("err\n")
    assert env.tool_calls == 2
    answer = [*history, Turn("observation", "ka=..\n"), Turn("model", f"a {row.answer}")]
    assert env.step(answer).done and env.score(answer) == 1.0
    assert env.score([Turn("model", "a 00")]) == 0.0 and env.score([]) == 0.0
    assert search_fact(0, "ka") != search_fact(1, "ka") or search_fact(0, "kb") != search_fact(1, "kb")
    assert SearchEnv(answer_style="boxed").answer_for_teacher_forcing(row) == ("\\boxed{", row.answer)


def test_chain_search_needs_three_lookups_and_scores_the_final_value():
    from rltrain.data import PromptRow
    from rltrain.data.tasks import CHAIN_HOPS, SEARCH_ENTITIES, chain_answer, chain_fact, chain_heads, make_rows
    from rltrain.envs import StepResult, Turn, env_class
    from rltrain.envs.search import ChainSearchEnv

    heads = chain_heads(0)
    # 676 entities in chains of 3: 225 chains (one entity left over, holding a value)
    assert CHAIN_HOPS == 3 and len(heads) == 225 and len(SEARCH_ENTITIES) == 676
    head = heads[0]
    first = chain_fact(0, head)
    second = chain_fact(0, first)
    value = chain_fact(0, second)
    assert first in SEARCH_ENTITIES and second in SEARCH_ENTITIES and value.isdigit() and 10 <= int(value) <= 99
    assert chain_answer(0, head) == value and chain_heads(1) != heads  # another world, other chains
    row = make_rows("search_chain", "train", 1)[0]
    assert row["prompt"] == f"{row['entity']}?" and row["answer"] == chain_answer(0, row["entity"])
    assert env_class("search_chain") is ChainSearchEnv
    env = ChainSearchEnv()
    env.reset(PromptRow(f"{head}?", value, {"entity": head, "world": 0}, f"search_chain:{head}?"))
    history = []
    for entity, fact in ((head, first), (first, second), (second, value)):
        history.append(Turn("model", f"s {entity}\n"))
        assert env.step(history) == StepResult(f"{entity}={fact}\n")
        history.append(Turn("observation", f"{entity}={fact}\n"))
    assert env.tool_calls == 3
    # answering the first hop's entity, or after one lookup with its fact, scores 0; the final value scores 1
    assert env.score([Turn("model", f"a {first}")]) == 0.0
    assert env.score([*history, Turn("model", f"a {value}")]) == 1.0


def test_chain_search_transcripts_follow_world_one_chains():
    from rltrain.data.tasks import chain_fact
    from rltrain.toy.search_chain_transcripts import WORLD, transcript
    import random

    rng = random.Random(0)
    episodes = [transcript(rng) for _ in range(400)]
    full = 0
    for ep in episodes:
        assert not ep[0][1] and all(seg[1] == (i % 2 == 0) for i, seg in enumerate(ep[1:]))  # model, observation, ...
        calls = [seg[0] for seg in ep if seg[1] and seg[0].startswith("s ")]
        observations = [seg[0] for seg in ep[1:] if not seg[1]]
        for call, obs in zip(calls, observations):  # every observation is the world-1 fact of its call
            entity = call[2:].strip()
            assert obs == f"{entity}={chain_fact(WORLD, entity)}\n"
        full += len(calls) == 3 and ep[-1][0] == f"a {observations[-1].split('=')[1].strip()}"
    assert 0.1 < full / len(episodes) < 0.3  # 15% follow the chain (plus some wrong hops that reach a value)


def _full_logits_logprobs(model, packed, temperature):
    """The plain computation: full-vocabulary logits at every position, gathered at the response."""
    logits = model(input_ids=packed["input_ids"], attention_mask=packed["attention_mask"]).logits
    n, t = packed["response_ids"].shape
    pos = (packed["resp_start"].view(-1, 1) - 1 + torch.arange(t).view(1, -1)).clamp(0, logits.shape[1] - 1)
    picked = logits.gather(1, pos.unsqueeze(-1).expand(n, t, logits.shape[-1])).float()
    logp_all = torch.log_softmax(picked / temperature, -1)
    logp = logp_all.gather(-1, packed["response_ids"].unsqueeze(-1)).squeeze(-1)
    return logp, -(logp_all.exp() * logp_all).sum(-1)


def test_chunked_response_logprobs_equal_full_logits_and_their_gradient(default_model):
    """Output layer on response positions only, in chunks recomputed in the backward: same log-probs,
    entropies and gradients as full-vocabulary logits everywhere (a real HF model)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(default_model, dtype=torch.float32)
    prompts = [torch.randint(3, 30, (k,)).tolist() for k in (4, 2, 6, 3)]
    responses = [torch.randint(3, 30, (k,)).tolist() for k in (5, 1, 3, 7)]
    packed = pack_rows(prompts, responses, pad_id=0)
    mask = packed["response_mask"]
    weights = torch.randn(mask.shape) * mask
    grads = []
    for chunk in (None, 3):
        model.zero_grad()
        if chunk is None:
            logp, ent = _full_logits_logprobs(model, packed, 0.7)
        else:
            logp, ent = response_logprobs(model, packed["input_ids"], packed["attention_mask"], packed["resp_start"],
                                          packed["response_ids"], 0.7, True, chunk_tokens=chunk)
        ((logp * weights).sum() + (ent * weights).sum()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        if chunk is None:
            ref_logp, ref_ent = logp.detach() * mask, ent.detach() * mask
    assert torch.allclose(logp.detach() * mask, ref_logp, atol=1e-5)
    assert torch.allclose(ent.detach() * mask, ref_ent, atol=1e-5)
    assert torch.allclose(grads[0], grads[1], atol=1e-5, rtol=1e-4)
    assert (logp.detach()[mask == 0] == 0).all()  # positions past a response are not computed


def test_learner_kernels_compute_the_same_logprobs_and_gradient(default_model):
    """The learner's speed options (`learner.attn_implementation: eager`, `learner.compile_layers`) give
    the log-probs and gradients of the plain sdpa model."""
    from transformers import AutoModelForCausalLM

    from rltrain.workers.deepspeed_role import compile_decoder_layers

    torch.manual_seed(0)
    packed = pack_rows([[3, 4, 5, 6], [7, 8]], [[9, 10, 11], [12, 13, 14, 15, 16]], pad_id=0)
    results = []
    for attn, compiled in (("sdpa", False), ("eager", False), ("eager", True)):
        model = AutoModelForCausalLM.from_pretrained(default_model, dtype=torch.float32, attn_implementation=attn)
        if compiled:
            compile_decoder_layers(model)
        logp, ent = response_logprobs(model, packed["input_ids"], packed["attention_mask"], packed["resp_start"],
                                      packed["response_ids"], 0.9, True)
        ((logp * packed["response_mask"]).sum() + (ent * packed["response_mask"]).sum()).backward()
        results.append((logp.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])))
    for logp, grad in results[1:]:
        assert torch.allclose(logp, results[0][0], atol=1e-5)
        assert torch.allclose(grad, results[0][1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("attn,compiled", [("sdpa", False), ("eager", False), ("eager", True)])
def test_shared_prompts_give_the_per_row_logprobs_and_gradient(default_model, attn, compiled):
    """`share_prompts`: a prompt that several rows share runs once, the responses attend to its cached
    keys/values; log-probs, entropies and gradients equal the per-row computation. Two groups with
    prompts of different lengths (the shorter one's padding slots masked) and a row with its own prompt."""
    from transformers import AutoModelForCausalLM

    from rltrain.workers.deepspeed_role import compile_decoder_layers
    from rltrain.workers.logprobs import _unique_prompts

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(default_model, dtype=torch.float32, attn_implementation=attn)
    if compiled:
        compile_decoder_layers(model)
    a, b, c = [3, 4, 5, 6, 7], [8, 9], [10, 11, 12]
    prompts = [a, a, b, a, b, c]
    responses = [torch.randint(3, 30, (k,)).tolist() for k in (4, 1, 6, 3, 2, 5)]
    packed = pack_rows(prompts, responses, pad_id=0)
    which, owners = _unique_prompts(packed["input_ids"], packed["resp_start"])
    assert which.tolist() == [0, 0, 1, 0, 1, 2] and owners == [0, 2, 5]
    mask = packed["response_mask"]
    weights = torch.randn(mask.shape) * mask
    results, tokens_in = [], []
    model.get_input_embeddings().register_forward_hook(lambda m, args, out: tokens_in.append(args[0].numel()))
    for share in (False, True):
        model.zero_grad()
        logp, ent = response_logprobs(model, packed["input_ids"], packed["attention_mask"], packed["resp_start"],
                                      packed["response_ids"], 0.8, True, share_prompts=share)
        ((logp * weights).sum() + (ent * weights).sum()).backward()
        results.append((logp.detach(), ent.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])))
    (logp0, ent0, grad0), (logp1, ent1, grad1) = results
    # per row: 6 rows x 9 columns (the longest row: 5 + 4); shared: 3 unique prompts x 5 columns, then 6 responses x 6 columns
    assert tokens_in == [54, 15, 36]
    assert (logp1[mask == 0] == 0).all()
    assert torch.allclose(logp1, logp0, atol=1e-5) and torch.allclose(ent1, ent0, atol=1e-5)
    assert torch.allclose(grad1, grad0, atol=1e-5, rtol=1e-4)
    assert _unique_prompts(packed["input_ids"][[0, 2, 5]], packed["resp_start"][[0, 2, 5]]) is None  # all distinct


def test_lora_merged_params_equal_peft_merge_under_plain_names(default_model):
    """What a LoRA learner syncs and exports: every base parameter under its plain name, W + (alpha/r) B A
    where an adapter sits, equal to peft's own merge; the base weights themselves stay unmerged."""
    import copy

    from transformers import AutoModelForCausalLM

    from rltrain.config.roles import LoRAConfig
    from rltrain.workers import lora

    base = AutoModelForCausalLM.from_pretrained(default_model, dtype=torch.float32)
    plain = {n: p.detach().clone() for n, p in base.named_parameters(remove_duplicate=False)}
    model = lora.wrap(base, LoRAConfig(rank=4, alpha=8))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # peft starts B at zero: give the adapters a delta to merge
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    merged = dict(lora.merged_params(model))
    expected = copy.deepcopy(model).merge_and_unload().state_dict()
    assert sorted(merged) == sorted(plain)
    changed = {n for n in merged if not torch.equal(merged[n], plain[n])}
    assert changed and all(n.endswith("_proj.weight") for n in changed), changed
    for name, tensor in merged.items():
        assert torch.allclose(tensor, expected[name], atol=1e-6), name
    base_now = {n.replace(".base_layer.", "."): p for n, p in model.get_base_model().named_parameters(remove_duplicate=False)
                if "lora_" not in n}
    assert all(torch.equal(base_now[n], w) for n, w in plain.items())  # the model itself is never merged in place


def test_signal_frac_counts_groups_with_a_reward_spread():
    """data/signal_frac = groups whose scored samples differ; a group with one scored sample has no spread."""
    from rltrain.data import PromptRow
    from rltrain.driver.flow.rollout import Record, rollout_metrics

    row = PromptRow(prompt="q", answer="a", key="k")
    rewards = {0: [1.0, 0.0], 1: [0.0, 0.0], 2: [1.0, 1.0], 3: [1.0, None]}
    records = [Record(row, g, [1], [2, 3], [-0.1, -0.2], True, 0, reward=r) for g, rs in rewards.items() for r in rs]
    m = rollout_metrics(records, max_new_tokens=4)
    assert m["data/signal_frac"] == 0.25 and m["rollout/frac_reward_zero_std"] == 0.75
    assert m["rollout/samples"] == 8 and m["rollout/dropped_samples"] == 1


def test_deepspeed_precision_accumulates_bf16_gradients_in_fp32():
    """bf16 weights get fp32 gradient accumulation, which DeepSpeed gives from ZeRO-1 on (stage 0 runs as 1);
    fp32 weights keep the stage asked for and no data_types section."""
    from rltrain.workers.deepspeed_role import deepspeed_precision

    fp32 = {"bf16": {"enabled": False}}
    bf16 = {"bf16": {"enabled": True}, "data_types": {"grad_accum_dtype": "fp32"}}
    assert [deepspeed_precision(z, "float32") for z in range(4)] == [(z, fp32) for z in range(4)]
    assert [deepspeed_precision(z, "bfloat16") for z in range(4)] == [(1, bf16), (1, bf16), (2, bf16), (3, bf16)]


def test_a_supervised_loop_stops_at_a_skipped_step():
    """SFT, DPO and reward-model training stop at a step any rank skipped for a non-finite gradient."""
    from rltrain.workers.deepspeed_role import stop_if_skipped

    ok = {"faults/skipped": 0.0, "actor/grad_norm": 1.5}
    stop_if_skipped([ok, ok], "sft", 3)
    with pytest.raises(FloatingPointError, match=r"^dpo step 4: non-finite gradient \(norm inf\); the optimizer step "
                                                 r"was skipped and the run stops here"):
        stop_if_skipped([{"faults/skipped": 0.0, "actor/grad_norm": float("inf")},
                         {"faults/skipped": 1.0, "actor/grad_norm": float("inf")}], "dpo", 4)

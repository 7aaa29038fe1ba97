"""Starting DeepSpeed worlds: a rendezvous port taken between its choice and rank 0's bind is chosen
again (the race the port's early choice leaves open), and a wait on a group of actors is bounded, so a
rank waiting on a dead peer cannot hang the driver. Real Ray actors, a real DeepSpeed learner."""

from __future__ import annotations

import socket
import time

import pytest
import ray

from rltrain.config import load
from rltrain.driver.trainer import Trainer
from rltrain.workers import actor_set
from rltrain.workers.group import RankGroup

pytestmark = pytest.mark.e2e


@ray.remote(num_cpus=0)
class _Answers:
    """Answers `reply` after `delay` seconds, or fails."""

    def __init__(self, delay: float, fail: bool = False) -> None:
        self.delay, self.fail = delay, fail

    def ping(self) -> bool:
        return True

    def reply(self) -> str:
        time.sleep(self.delay)
        if self.fail:
            raise ValueError("rank failed")
        return "ok"


def test_call_within_raises_the_first_error_at_once_and_names_silent_actors(ray_session):
    assert RankGroup([_Answers.remote(0.0), _Answers.remote(0.5)]).call_within("reply", 30) == ["ok", "ok"]
    failing = RankGroup([_Answers.remote(0.0, fail=True), _Answers.remote(20.0)])
    failing.call("ping")  # processes up before the clock starts (a cold start can take seconds)
    t0 = time.monotonic()
    with pytest.raises(ray.exceptions.RayTaskError, match="rank failed"):
        failing.call_within("reply", 60)
    assert time.monotonic() - t0 < 10  # actor 0's error, without waiting for actor 1's 20 s
    silent = RankGroup([_Answers.remote(0.0), _Answers.remote(20.0)])
    silent.call("ping")
    with pytest.raises(TimeoutError, match=r"reply: actors \[1\] did not answer within 1 s"):
        silent.call_within("reply", 1)
    failing.kill()
    silent.kill()


def test_a_taken_rendezvous_port_is_chosen_again(tmp_path, ray_session, default_model, monkeypatch, capsys):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = [("127.0.0.1", taken.getsockname()[1])]  # the first choice: a port another process holds
    real = actor_set.learner_rendezvous
    monkeypatch.setattr(actor_set, "learner_rendezvous", lambda pg, bundle: ports.pop(0) if ports else real(pg, bundle))
    cfg = load(None, {"model.path": default_model, "rollout.engine": "transformers", "rollout.prompts_per_step": 2,
                      "rollout.n_samples": 2, "rollout.max_new_tokens": 4, "trainer.steps": 1,
                      "trainer.output_dir": str(tmp_path), "trainer.run_name": "port", "eval.max_prompts": 2,
                      "logging.wandb": False, "logging.report": False, "data.n_train": 20, "data.n_test": 4})
    try:
        trainer = Trainer(cfg)
        try:
            assert trainer.actors.learners.call("ping") == [True] and not ports
            assert "rendezvous port was taken" in capsys.readouterr().out
        finally:
            trainer.close()
    finally:
        taken.close()


def test_a_failed_start_leaves_no_placement_group(tmp_path, ray_session, default_model):
    """An engine that cannot start (a bad engine option) fails the run's start; the learners already up and
    the placement group made for the run are released, so the next run in this process fits."""
    cfg = load(None, {"model.path": default_model, "rollout.engine": "rltrain_user_parts:CountingEngine",
                      "rollout.engine_options": {"no_such_option": 1}, "trainer.steps": 1,
                      "trainer.output_dir": str(tmp_path), "trainer.run_name": "bad_engine", "logging.wandb": False,
                      "rollout.prompts_per_step": 2, "rollout.n_samples": 2,
                      "logging.report": False, "data.n_train": 20, "data.n_test": 4})
    with pytest.raises(ray.exceptions.RayActorError, match="no_such_option"):
        Trainer(cfg)
    states = [pg["state"] for pg in ray.util.placement_group_table().values()]
    assert states and all(s == "REMOVED" for s in states), states

"""rltrain: RL post-training for causal LMs.

Ray actors split rollout generation (vLLM or transformers engines) from policy learning
(DeepSpeed engines); algorithms come from the pure-torch `algorithms` package and rewards from the
standalone `rewards` package. The data path of one step is in `rltrain.driver.trainer.Trainer.step`.
"""

__version__ = "0.1.0"

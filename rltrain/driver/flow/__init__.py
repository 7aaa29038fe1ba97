"""driver/flow/: schedules and the data flow, from prompts to the typed update batch.

`schedules` (sync, async, one_step_off, replay: when generation runs and which batch a step trains on),
`collector` (generation rounds, refills, the data policy), `rollout` (prompts -> engines -> scored records
-> the batch), `multiturn` (episodes with an environment), `chat_check` (the chat-template prefix check),
`partial` (partial rollouts), `replay` (the buffer), `rewards` (the reward runner), `gt_probs` (IGPO's
teacher-forced queries), `evaluation` (pass@k on held-out prompts).

May import: rltrain.config, rltrain.data, rltrain.envs, rltrain.workers.group, `algorithms`, `rewards`,
ray, torch. Never the loop above it (rltrain.driver.trainer, update, critic, run_setup, sweep), nor
driver/recovery or driver/reporting.
"""

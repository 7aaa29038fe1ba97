"""``reward_model``: scores from a Hugging Face sequence-classification model directory.

torch and transformers are imported only when the model is first used, so ``import rewards``
stays light. The trainer runs this callable inside a Ray actor (one model copy, batched calls);
here it is a plain callable that works anywhere.
"""

from __future__ import annotations

from typing import Any

from ._text import completion_text, prompt_text

__all__ = ["RewardModelReward"]


class RewardModelReward:
    """The model's logit (or sigmoid of it) for ``prompt + completion``.

    Args:
        model_path: a local model directory (AutoModelForSequenceClassification + tokenizer).
        device: torch device ("cpu", "cuda", "cuda:1").
        batch_size: samples per forward pass.
        max_length: truncate inputs to this many tokens (keeping the end: the completion).
        label: which output logit is the score (default 0, the usual single-logit head).
        activation: None (raw logit) or "sigmoid".
        dtype: torch dtype name ("float32", "bfloat16"), default the model's.
        chat_template: for conversational samples, render prompt+completion with the
            tokenizer's chat template when it has one (else contents are joined with newlines).
    """

    __name__ = "reward_model"

    def __init__(
        self,
        model_path: str,
        device: str = "cpu",
        batch_size: int = 8,
        max_length: int = 2048,
        label: int = 0,
        activation: str | None = None,
        dtype: str | None = None,
        chat_template: bool = True,
    ) -> None:
        if activation not in (None, "sigmoid"):
            raise ValueError(f"activation must be None or 'sigmoid', got {activation!r}")
        self.model_path = model_path
        self.device = device
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.label = int(label)
        self.activation = activation
        self.dtype = dtype
        self.chat_template = chat_template
        self._model: Any = None
        self._tok: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None, "_tok": None}

    def load(self) -> None:
        """Load tokenizer and model now (otherwise done on the first call)."""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.model_path)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token or tok.unk_token
        tok.truncation_side = "left"
        kwargs = {"dtype": getattr(torch, self.dtype)} if self.dtype else {}
        model = AutoModelForSequenceClassification.from_pretrained(self.model_path, **kwargs)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tok.pad_token_id
        self._model = model.to(self.device).eval()
        self._tok = tok

    def _text(self, prompt: Any, completion: Any) -> str:
        conversational = isinstance(completion, (list, tuple)) and isinstance(prompt, (list, tuple))
        if conversational and self.chat_template and getattr(self._tok, "chat_template", None):
            return self._tok.apply_chat_template(list(prompt) + list(completion), tokenize=False)
        return prompt_text(prompt) + ("\n" if conversational else "") + completion_text(completion)

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        import torch

        if self._model is None:
            self.load()
        prompts = prompts if prompts is not None else [None] * len(completions)
        texts = [self._text(p, c) for p, c in zip(prompts, completions)]
        scores: list[float | None] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tok(
                texts[start : start + self.batch_size], return_tensors="pt", padding=True,
                truncation=True, max_length=self.max_length, add_special_tokens=False,
            ).to(self.device)
            with torch.inference_mode():
                logits = self._model(**batch).logits[:, self.label].float()
            if self.activation == "sigmoid":
                logits = torch.sigmoid(logits)
            scores.extend(float(x) for x in logits.cpu())
        return scores

"""The GPT-style decoder-only transformer that every sweep run trains.

One file, read top to bottom, in the manner of nanoGPT (Karpathy) and GPT-2 (Radford et al. 2019):

- pre-LayerNorm residual blocks (LayerNorm -> causal self-attention -> add, LayerNorm -> MLP 4x -> add);
- causal attention through ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient
  kernels where the device has them);
- learned absolute position embeddings (GPT-2), so a run's shape fully fixes its parameter count;
- **untied** input and output embeddings, as in Chinchilla (Hoffmann et al. 2022): the output projection is an
  ordinary matmul whose parameters count as non-embedding parameters (see ``models.accounting``);
- no biases anywhere (Linear and LayerNorm), as in PaLM and most recent GPTs: it keeps the parameter and FLOP
  accounting exact and costs nothing measurable.

Shapes in comments: B batch, T sequence length, C d_model, nh heads, hs head size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class GPTShape:
    """The architecture of one model: everything that fixes its parameter count and FLOPs per token."""

    n_layer: int
    """Number of transformer blocks."""
    d_model: int
    """Residual stream width; the MLP is 4 * d_model wide."""
    n_head: int
    """Attention heads; d_model must be a multiple of it (head size = d_model / n_head)."""
    seq_len: int
    """Context length in tokens (position-embedding rows)."""
    vocab_size: int
    """Token vocabulary size (256 for the byte-level default corpus)."""

    def __post_init__(self) -> None:
        for field in ("n_layer", "d_model", "n_head", "seq_len", "vocab_size"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1, got {getattr(self, field)}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_head ({self.n_head})")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def d_ff(self) -> int:
        """Hidden width of the MLP."""
        return 4 * self.d_model


class CausalSelfAttention(nn.Module):
    def __init__(self, shape: GPTShape) -> None:
        super().__init__()
        self.n_head = shape.n_head
        self.qkv = nn.Linear(shape.d_model, 3 * shape.d_model, bias=False)
        self.proj = nn.Linear(shape.d_model, shape.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, shape: GPTShape) -> None:
        super().__init__()
        self.up = nn.Linear(shape.d_model, shape.d_ff, bias=False)
        self.down = nn.Linear(shape.d_ff, shape.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    def __init__(self, shape: GPTShape) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(shape.d_model, bias=False)
        self.attn = CausalSelfAttention(shape)
        self.ln_mlp = nn.LayerNorm(shape.d_model, bias=False)
        self.mlp = MLP(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_attn(x))
        x = x + self.mlp(self.ln_mlp(x))
        return x


class GPT(nn.Module):
    """Decoder-only transformer: token + position embeddings, ``n_layer`` blocks, final LayerNorm, output head."""

    def __init__(self, shape: GPTShape) -> None:
        super().__init__()
        self.shape = shape
        self.token_embedding = nn.Embedding(shape.vocab_size, shape.d_model)
        self.position_embedding = nn.Embedding(shape.seq_len, shape.d_model)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.n_layer))
        self.ln_final = nn.LayerNorm(shape.d_model, bias=False)
        self.lm_head = nn.Linear(shape.d_model, shape.vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2's scaled init of the projections that write into the residual stream: std 0.02 / sqrt(2 * n_layer).
        for name, param in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.down.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * shape.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, vocab) and, given targets (B, T), the mean cross-entropy in nats per token."""
        B, T = idx.shape
        if T > self.shape.seq_len:
            raise ValueError(f"sequence of length {T} exceeds seq_len {self.shape.seq_len}")
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.token_embedding(idx) + self.position_embedding(pos)  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_final(x))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

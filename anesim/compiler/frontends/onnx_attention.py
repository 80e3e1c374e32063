"""ONNX ``Attention`` (opset 23+) -> graph ops: products, an additive mask, softmax.

What is known at compile time (causal and sliding-window masks, padding from
``nonpad_kv_seqlen``) becomes one constant bias; a run-time mask adds to it. A masked position
gets −30000 rather than −inf, which fp16 holds and a softmax turns into 0 just the same, and
rows with no allowed key are zeroed afterwards, as the specification asks.
"""

from __future__ import annotations

import math

import numpy as np

MASKED = -30000.0  # far below any fp16 score a softmax keeps; exp of it is 0 in fp16


class AttentionHandlers:
    """The ``Attention`` op (mixed into the importer)."""

    def _op_Attention(self) -> None:
        self.require_float(0, 1, 2, 4, 5)
        attrs = {k: self.attr(k) for k in ("is_causal", "kv_num_heads", "q_num_heads", "scale", "softcap",
                                           "qk_matmul_output_mode", "softmax_precision",
                                           "left_window_size", "right_window_size")}
        q, k, v = self.t(0), self.t(1), self.t(2)
        rank = len(self.shape(q))
        if rank == 3:
            heads_q, heads_kv = attrs["q_num_heads"], attrs["kv_num_heads"]
            if not heads_q or not heads_kv:
                raise self.fail("3-D Attention needs q_num_heads and kv_num_heads")
            q, k, v = (self._heads(t, h) for t, h in ((q, heads_q), (k, heads_kv), (v, heads_kv)))
        elif rank != 4:
            raise self.fail("Attention takes 3-D or 4-D Q, K, V", found=f"rank {rank}")
        outs = self.outs() + [None] * (4 - len(self.outs()))
        if self.inp(4) or self.inp(5):
            if not (self.inp(4) and self.inp(5)):
                raise self.fail("past_key and past_value come together")
            k = self.emit("concat", [self.t(4), k], axis=2)
            v = self.emit("concat", [self.t(5), v], axis=2)
            if outs[1]:
                self.finish(k, outs[1])
            if outs[2]:
                self.finish(v, outs[2])
        else:
            if outs[1]:
                self.finish(self.emit("identity", [k]), outs[1])
            if outs[2]:
                self.finish(self.emit("identity", [v]), outs[2])
        past = self.shape(self.inp(4))[2] if self.inp(4) else 0
        batch, heads, q_len, head_size = self.shape(q)
        kv_heads, kv_len = self.shape(k)[1], self.shape(k)[2]
        if heads != kv_heads:
            if heads % kv_heads:
                raise self.fail("query heads must be a multiple of key/value heads", found=f"{heads}, {kv_heads}")
            repeat = [h // (heads // kv_heads) for h in range(heads)]
            k, v = self.select(k, 1, repeat), self.select(v, 1, repeat)
        scale = attrs["scale"] if attrs["scale"] is not None else 1.0 / math.sqrt(head_size)
        scores = self.emit("scale", [self.emit("matmul", [q, k], transpose_b=True)], scale=float(scale))
        mode = int(attrs["qk_matmul_output_mode"] or 0)
        raw = scores
        softcap = float(attrs["softcap"] or 0.0)
        if softcap > 0:
            scores = self.emit("scale", [self.emit("tanh", [self.emit("scale", [scores], scale=1 / softcap)])],
                               scale=softcap)
        capped = scores
        allowed = self._known_allowed(batch, q_len, kv_len, past, attrs)
        mask = self.inp(3)
        bias = m = None
        boolean = False
        guard = None
        if mask is not None:
            m = self.t(3)
            width = self.shape(m)[-1]
            boolean = self.dtype(m) == np.bool_
            if width < kv_len:
                m = self.select(m, -1, list(range(width)) + [None] * (kv_len - width), 0.0 if boolean else MASKED)
            if boolean:
                if allowed is not None:
                    m = self.emit("mul", [m, self._const_tensor(allowed.astype(np.float32), "allowed")])
                bias = self.emit("scale", [m], scale=-MASKED, bias=MASKED)
                guard = self.emit("reduce_max", [m], axis=-1, keepdims=True)
            else:
                bias = m
                if allowed is not None:
                    bias = self.emit("add", [bias, self._const_tensor(np.where(allowed, 0.0, MASKED)
                                                                      .astype(np.float32), "bias")])
        elif allowed is not None:
            bias = self._const_tensor(np.where(allowed, 0.0, MASKED).astype(np.float32), "bias")
        if allowed is not None and guard is None and not allowed.any(-1).all():
            guard = self._const_tensor(allowed.any(-1, keepdims=True).astype(np.float32), "rows")
        if bias is not None:
            scores = self.emit("add", [scores, bias])
        biased = scores
        probs = self.emit("softmax", [scores], axis=-1)
        if guard is not None:
            probs = self.emit("mul", [probs, guard])
        y = self.emit("matmul", [probs, v])
        if rank == 3:
            y = self.emit("transpose", [y], perm=[0, 2, 1, 3])
            y = self.emit("reshape", [y], shape=[batch, q_len, heads * self.shape(v)[3]])
        self.finish(y, outs[0])
        if outs[3]:
            if mode == 2:  # the scores with the bias as ONNX writes it: -inf where masked
                biased = capped
                if mask is not None:
                    if boolean:
                        raise self.fail("qk_matmul_output_mode 2 with a boolean mask: ONNX gives -inf at "
                                        "masked positions, the engine holds -30000 there")
                    biased = self.emit("add", [biased, m])
                if allowed is not None:
                    biased = self.emit("add", [biased, self._const_tensor(
                        np.where(allowed, 0.0, -np.inf).astype(np.float32), "bias")])
            chosen = {0: raw, 1: capped, 2: biased, 3: probs}.get(mode)
            if chosen is None:
                raise self.fail("unknown qk_matmul_output_mode", found=mode)
            self.finish(self.emit("identity", [chosen]), outs[3])

    def _heads(self, x: str, heads: int) -> str:
        """(B, S, H*D) -> (B, H, S, D)."""
        batch, length, hidden = self.shape(x)
        split = self.emit("reshape", [x], shape=[batch, length, heads, hidden // heads])
        return self.emit("transpose", [split], perm=[0, 2, 1, 3])

    def _known_allowed(self, batch: int, q_len: int, kv_len: int, past: int, attrs: dict) -> np.ndarray | None:
        """The compile-time part of the mask (causal, window, padding) as allowed positions."""
        nonpad = self.const_ints(6) if self.inp(6) else None
        if nonpad is not None and past:
            raise self.fail("nonpad_kv_seqlen cannot be combined with past key/value")
        left = -1 if attrs["left_window_size"] is None else int(attrs["left_window_size"])
        right = -1 if attrs["right_window_size"] is None else int(attrs["right_window_size"])
        causal = bool(attrs["is_causal"])
        if not causal and left < 0 and right < 0 and nonpad is None:
            return None
        offset = (np.asarray(nonpad) - q_len).reshape(-1, 1, 1) if nonpad is not None else np.full((1, 1, 1), past)
        i = np.arange(q_len).reshape(1, -1, 1)
        j = np.arange(kv_len).reshape(1, 1, -1)
        allowed = np.ones((offset.shape[0], q_len, kv_len), bool)
        diff = i + offset - j
        if causal:
            allowed &= diff >= 0
        if left >= 0:
            allowed &= diff <= left
        if right >= 0:
            allowed &= -diff <= right
        if nonpad is not None:
            allowed &= j < np.asarray(nonpad).reshape(-1, 1, 1)
        return allowed.reshape(offset.shape[0], 1, q_len, kv_len) if offset.shape[0] > 1 else allowed[0]

#!/usr/bin/env python3
"""PyTorch twin of maskmix's models, written independently from the paper's description.

It loads a maskmix safetensors checkpoint (parsed here with numpy: no safetensors package needed) and a
batch of tokens, and prints the mean cross-entropy and logits checksums as one JSON line, so maskmix's
numbers can be checked outside maskmix.

    torch_twin.py --checkpoint RUN/model.safetensors --tokens batch.bin --batch B
        batch.bin: int32 inputs [B, n_ctx] followed by int32 targets [B, n_ctx] (-1 = ignored)

    torch_twin.py --bench [--configs mixer:d512:l8:c512,...] [--batch 32] [--out torch_bench.csv]
        times training steps on the GPU (bf16 autocast, fused AdamW), eager and torch.compile, the
        same way `maskmix bench` does: median of CUDA-event-timed steps after warm-up.
"""
import argparse
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "U16": np.uint16, "U64": np.uint64}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    meta = header.pop("__metadata__", {})
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        array = np.frombuffer(blob[base + begin:base + end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return meta, tensors


def parse_descriptor(text):
    parts = text.split(":")
    cfg = dict(kind=parts[0], d=512, l=8, c=512, v=4096, h=4, ff=4, variant="flat", mixer_heads=1, expansion=2,
               parallel=2, tied=parts[0] == "gpt")
    for p in parts[1:]:
        for prefix, key in (("expanded", "expansion"), ("heads", "mixer_heads"), ("parallel", "parallel"), ("ff", "ff")):
            if p.startswith(prefix) and p[len(prefix):].isdigit():
                cfg[key] = int(p[len(prefix):])
                cfg["variant"] = prefix if prefix != "ff" else cfg["variant"]
                break
        else:
            if p == "expanded":
                cfg["variant"] = "expanded"
            elif p in ("tied", "untied"):
                cfg["tied"] = p == "tied"
            elif p[0] in "dlchv" and p[1:].isdigit():
                cfg[p[0]] = int(p[1:])
            else:
                raise SystemExit(f"torch_twin: unknown descriptor part {p!r}")
    return cfg


class CausalMix(nn.Module):
    """y[:, i] = sum_{j <= i} W[i, j] x[:, j] + c[i], W applied per feature group."""

    def __init__(self, t_out, t_in, groups=1):
        super().__init__()
        shape = (groups, t_out, t_in) if groups > 1 else (t_out, t_in)
        self.weight = nn.Parameter(torch.zeros(shape))
        self.bias = nn.Parameter(torch.zeros((groups, t_out) if groups > 1 else (t_out,)))
        self.groups = groups

    def forward(self, x):  # x [B, T_in, D]
        w = torch.tril(self.weight)
        if self.groups == 1:
            return torch.einsum("ij,bjd->bid", w, x) + self.bias[None, :, None]
        b, t, d = x.shape
        xg = x.view(b, t, self.groups, d // self.groups)
        y = torch.einsum("gij,bjgf->bigf", w, xg) + self.bias.t()[None, :, :, None]
        return y.reshape(b, -1, d)


class MixerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, t = cfg["d"], cfg["c"]
        self.variant = cfg["variant"]
        self.ln1 = nn.LayerNorm(d)
        if self.variant == "flat":
            self.mix = CausalMix(t, t)
        elif self.variant == "heads":
            self.mix = nn.Module()
            self.mix.proj = nn.Linear(d, d)
            self.mix.inner = CausalMix(t, t, cfg["mixer_heads"])
            self.mix.out = nn.Linear(d, d)
        elif self.variant == "parallel":
            self.mix = nn.ModuleList([CausalMix(t, t) for _ in range(cfg["parallel"])])
        else:
            e = cfg["expansion"] * t
            self.mix = nn.Module()
            self.mix.add_module("in", CausalMix(e, t))
            self.mix.add_module("out", CausalMix(t, e))
        self.ln2 = nn.LayerNorm(d)
        self.ff = nn.Module()
        self.ff.fc = nn.Linear(d, cfg["ff"] * d)
        self.ff.proj = nn.Linear(cfg["ff"] * d, d)

    def token_mix(self, h):
        if self.variant == "flat":
            return self.mix(h)
        if self.variant == "heads":
            return self.mix.out(self.mix.inner(self.mix.proj(h)))
        if self.variant == "parallel":
            return sum(F.gelu(m(h)) for m in self.mix)
        return getattr(self.mix, "out")(F.gelu(getattr(self.mix, "in")(h)))

    def forward(self, x):
        x = x + self.token_mix(self.ln1(x))
        return x + self.ff.proj(F.gelu(self.ff.fc(self.ln2(x))))


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


def rope(x, positions):  # x [B, H, T, Dh]
    dh = x.shape[-1]
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dh, 2, dtype=torch.float64, device=x.device) / dh))
    angles = positions[:, None].double() * inv_freq[None, :]
    cos = torch.cat([angles.cos(), angles.cos()], -1).to(x.dtype)
    sin = torch.cat([angles.sin(), angles.sin()], -1).to(x.dtype)
    x1, x2 = x[..., : dh // 2], x[..., dh // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def causal_attention(qkv, heads, use_rope):
    b, t, three_d = qkv.shape
    d = three_d // 3
    q, k, v = (z.view(b, t, heads, d // heads).transpose(1, 2) for z in qkv.split(d, dim=-1))
    if use_rope:
        pos = torch.arange(t, device=qkv.device)
        q, k = rope(q, pos), rope(k, pos)
    if qkv.is_cuda and hasattr(F, "scaled_dot_product_attention"):  # flash attention on the GPU
        return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
    mask = torch.ones(t, t, dtype=torch.bool, device=qkv.device).tril()
    scores = scores.masked_fill(~mask, float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)


class LlamaBlock(nn.Module):
    def __init__(self, cfg, hybrid):
        super().__init__()
        d, f = cfg["d"], cfg["ff"] * cfg["d"]
        self.heads, self.hybrid = cfg["h"], hybrid
        self.attn_norm = RMSNorm(d)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(d, 3 * d, bias=False)
        self.attn.out = nn.Linear(d, d, bias=False)
        if hybrid:
            self.mix = CausalMix(cfg["c"], cfg["c"])
        self.mlp_norm = RMSNorm(d)
        self.mlp = nn.Module()
        self.mlp.gate_up = nn.Linear(d, 2 * f, bias=False)
        self.mlp.down = nn.Linear(f, d, bias=False)

    def forward(self, x):
        a = self.attn.out(causal_attention(self.attn.qkv(self.attn_norm(x)), self.heads, True))
        if self.hybrid:
            a = a + self.mix(a)
        x = x + a
        gate, up = self.mlp.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.mlp.down(F.silu(gate) * up)


class GptBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["d"]
        self.heads = cfg["h"]
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(d, 3 * d)
        self.attn.out = nn.Linear(d, d)
        self.ln1 = nn.LayerNorm(d)
        self.mlp = nn.Module()
        self.mlp.fc = nn.Linear(d, cfg["ff"] * d)
        self.mlp.proj = nn.Linear(cfg["ff"] * d, d)
        self.ln2 = nn.LayerNorm(d)

    def forward(self, x):
        n = self.ln1(x + self.attn.out(causal_attention(self.attn.qkv(x), self.heads, False)))
        return self.ln2(n + self.mlp.proj(F.gelu(self.mlp.fc(n))))


class LanguageModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        kind = cfg["kind"]
        self.wte = nn.Embedding(cfg["v"], cfg["d"])
        if kind == "gpt":
            self.wpe = nn.Embedding(cfg["c"], cfg["d"])
        make = {"mixer": lambda: MixerBlock(cfg), "llama": lambda: LlamaBlock(cfg, False),
                "hybrid": lambda: LlamaBlock(cfg, True), "gpt": lambda: GptBlock(cfg)}[kind]
        self.blocks = nn.ModuleList([make() for _ in range(cfg["l"])])
        if kind in ("llama", "hybrid"):
            self.final_norm = RMSNorm(cfg["d"])
        if not cfg["tied"]:
            self.lm_head = nn.Linear(cfg["d"], cfg["v"], bias=False)

    def forward(self, tokens):
        x = self.wte(tokens)
        if hasattr(self, "wpe"):
            x = x + self.wpe(torch.arange(tokens.shape[1], device=tokens.device))[None]
        for block in self.blocks:
            x = block(x)
        if hasattr(self, "final_norm"):
            x = self.final_norm(x)
        return x @ (self.wte.weight if self.cfg["tied"] else self.lm_head.weight).t()


def remap(name):
    # Our module tree names the heads-variant's inner mix "inner"; maskmix names it "mix.weight".
    return name.replace("mix.inner.", "mix.")


def load_model(path):
    meta, tensors = read_safetensors(path)
    cfg = parse_descriptor(meta["model"])
    model = LanguageModel(cfg)
    state = {}
    for name in model.state_dict():
        source = remap(name)
        if source not in tensors:
            raise SystemExit(f"torch_twin: checkpoint lacks {source}")
        state[name] = tensors[source]
    model.load_state_dict(state)
    return model, cfg


def bench(args):
    import time
    rows = []
    for descriptor in args.configs.split(","):
        cfg = parse_descriptor(descriptor)
        for mode in ("eager", "compile"):
            torch.manual_seed(0)
            model = LanguageModel(cfg).cuda()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
            step_model = torch.compile(model) if mode == "compile" else model
            tokens = torch.randint(0, cfg["v"], (args.batch, cfg["c"]), device="cuda")
            targets = torch.randint(0, cfg["v"], (args.batch, cfg["c"]), device="cuda")

            def step():
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = step_model(tokens)
                loss = F.cross_entropy(logits.float().view(-1, cfg["v"]), targets.view(-1))
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()

            torch.cuda.reset_peak_memory_stats()
            start_compile = time.time()
            for _ in range(args.warmup_steps):
                step()
            torch.cuda.synchronize()
            warm_s = time.time() - start_compile
            times = []
            for _ in range(args.steps):
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record()
                step()
                end.record()
                end.synchronize()
                times.append(begin.elapsed_time(end) / 1e3)
            times.sort()
            median = times[len(times) // 2]
            tps = args.batch * cfg["c"] / median
            mem = torch.cuda.max_memory_allocated() / 1e9
            rows.append((descriptor, mode, args.batch, tps, median * 1e3, mem, warm_s, torch.cuda.get_device_name()))
            print(f"{descriptor:<28} {mode:<8} {tps:>12.0f} tok/s {median * 1e3:>8.2f} ms {mem:>6.2f} GB (warm-up {warm_s:.0f} s)", flush=True)
            del model, opt, step_model
            torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        f.write("config,mode,batch,tokens_per_s,step_ms,peak_mem_gb,warmup_s,card\n")
        for r in rows:
            f.write(f"{r[0]},{r[1]},{r[2]},{r[3]:.0f},{r[4]:.2f},{r[5]:.3f},{r[6]:.1f},{r[7]}\n")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--tokens", help="int32 inputs then targets, each [batch, n_ctx]")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--double", action="store_true", help="compute in float64")
    parser.add_argument("--bench", action="store_true", help="time training steps on the GPU instead")
    parser.add_argument("--configs", default="mixer:d512:l8:c512,mixer:d1024:l8:c512,llama:d512:l8:h4:c512,llama:d1024:l8:h8:c512")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--out", default="torch_bench.csv")
    args = parser.parse_args()
    if args.bench:
        return bench(args)
    if not args.checkpoint or not args.tokens:
        parser.error("--checkpoint and --tokens are required (or --bench)")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, cfg = load_model(args.checkpoint)
    if args.double:
        model = model.double()
    data = np.fromfile(args.tokens, dtype=np.int32)
    n = args.batch * cfg["c"]
    if data.size != 2 * n:
        raise SystemExit(f"torch_twin: {args.tokens} holds {data.size} int32 values, expected {2 * n}")
    inputs = torch.from_numpy(data[:n].reshape(args.batch, cfg["c"]).astype(np.int64))
    targets = torch.from_numpy(data[n:].reshape(args.batch, cfg["c"]).astype(np.int64))
    with torch.no_grad():
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, cfg["v"]), targets.reshape(-1), ignore_index=-1)
    print(json.dumps({"model": ":".join(str(x) for x in [cfg["kind"], cfg["d"], cfg["l"], cfg["c"]]), "loss": loss.item(),
                      "logits_sum": logits.sum().item(), "logits_abs_sum": logits.abs().sum().item()}))


if __name__ == "__main__":
    sys.exit(main())

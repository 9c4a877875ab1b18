"""Keyword and phrase rules: how strongly a paper's own words point at each topic. Pure.

Evidence comes from three places, weighted by how much each says about the paper's subject:

- the title (a phrase there counts ``TITLE_WEIGHT`` times its weight: titles name the contribution),
- the abstract (repeats add a little, with diminishing returns: a passing mention is weak evidence),
- the feed's own keywords (``ai_keywords``), each a short phrase chosen to describe the paper.

A topic's phrases are its configured ``keywords`` (strong evidence, ``KEYWORD_WEIGHT`` each) plus, for the
shipped topic slugs, the built-in vocabulary below (weights 0.25–3: a word such as "inference" hints,
a phrase such as "speculative decoding" decides). A topic's ``exclude`` phrase found anywhere rules the
topic out for that paper.

The vocabulary is written from the field's standard terminology, not from any sample of papers, so it
generalises to papers nobody has seen; the evaluation sets in tests/data check that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping, Sequence

from .text import DocWords, Grams, Phrase, compile_phrase

KEYWORD_WEIGHT = 3.0  # a configured keyword: strong evidence
DESCRIPTION_WEIGHT = 2.0  # a phrase of the topic's name or description ...
DESCRIPTION_WORD_WEIGHT = 0.5  # ... or a single word of it (weaker: "depth", "reconstruction")
TITLE_WEIGHT = 3.0
FEED_KEYWORD_WEIGHT = 2.0
_REPEATS = (0.0, 1.0, 1.5, 1.8, 2.0)  # abstract occurrences → multiplier
ABSTRACT_KNEE = 12.0
ABSTRACT_SLOPE = 0.5

# Built-in vocabulary of the shipped topics: generic terms of each field with a weight for how much a
# single mention says. Configured keywords come on top (see config.yaml).
BUILTIN: dict[str, dict[str, float]] = {
    "llm-inference": {
        "inference": 1.0, "serving": 2.0, "served": 1.0, "latency": 0.75, "throughput": 0.75,
        "decoding": 1.5, "decode": 1.5, "autoregressive decoding": 2.0, "token generation": 1.5,
        "generation speed": 1.0, "batching": 1.5, "request*": 1.0, "slo": 2.0, "service level": 1.5,
        "long context": 1.0, "context length": 1.0, "context window": 1.0,
        "offloading": 1.0, "edge device*": 0.75, "on-device": 0.75, "consumer-grade": 0.75,
        "limited memory": 1.0, "mixture of expert*": 1.0, "moe": 1.0, "expert offloading": 2.5,
        "draft": 2.0, "draft token*": 2.5, "verification": 0.5, "sparse attention": 1.0,
        "token pruning": 1.5, "token eviction": 2.5, "early exit*": 1.5, "tokens per second": 2.0,
        "time per output token": 2.5, "large language model*": 0.5, "llm": 0.5, "lookahead decoding": 3.0,
        "multi-token prediction": 1.5, "prompt caching": 2.5, "cache reuse": 2.0, "attention sink*": 2.0,
        "inference cost": 1.5, "inference latency": 1.5, "inference efficiency": 1.5,
        "deployment": 0.5, "deploy*": 0.5, "efficient inference": 2.0, "inference acceleration": 2.0,
    },
    "quantization": {
        "compress*": 1.5, "sparsity": 2.0, "sparse": 0.75, "prun*": 2.5, "precision": 1.0,
        "low-precision": 2.0, "mixed-precision": 1.5, "bit": 1.0, "outlier*": 1.5, "rounding": 1.5,
        "calibration": 1.0, "codebook": 1.0, "knowledge distillation": 1.0, "distillation": 0.5,
        "lottery ticket*": 2.5, "memory footprint": 1.0, "model size": 1.0, "parameter sharing": 1.5,
        "low-rank": 0.75, "storage": 0.5, "int2": 3.0, "int3": 3.0, "nf4": 3.0, "fp16": 1.0,
        "bf16": 1.0, "bfloat16": 1.0, "floating-point format*": 2.0, "group-wise": 1.5,
        "channel-wise": 1.0, "per-channel": 1.0, "bit-width": 3.0, "bitwidth": 3.0,
        "n:m sparsity": 3.0, "2:4 sparsity": 3.0, "unstructured sparsity": 3.0, "sparse model*": 1.5,
        "weight-only": 2.5, "activation outlier*": 2.5, "smoothquant": 3.0, "gptq": 3.0, "awq": 3.0,
    },
    "training": {
        "training": 0.75, "fine tun*": 1.5, "finetun*": 1.5, "pre-training": 1.0, "pretraining": 1.0,
        "gpu cluster*": 2.0, "cluster*": 0.75, "thousands of gpu*": 2.0, "communication": 1.0,
        "communication overhead": 1.5, "overlap*": 0.75, "interconnect*": 0.75, "bandwidth": 0.5,
        "tensor parallel*": 1.5, "expert parallel*": 1.5, "parallelism": 1.5, "sharding": 2.0,
        "shard*": 1.0, "checkpoint*": 2.0, "fault toleran*": 2.0, "failure*": 1.0, "elastic*": 1.0,
        "gradient*": 0.75, "backpropagation": 1.5, "backward pass": 1.0, "optimizer": 1.5,
        "adam": 1.0, "sgd": 1.5, "convergence": 0.75, "memory wall": 1.5, "offload*": 1.0, "nvme": 1.0,
        "activation memory": 1.5, "zeroth-order": 1.5, "peft": 2.0, "adapter*": 1.0, "mfu": 2.0,
        "scaling law*": 0.75, "training cost": 1.0, "training efficiency": 2.0, "training throughput": 2.0,
        "model merging": 2.0, "merging": 1.0, "supercomputer*": 1.0, "learning rate": 1.0,
        "batch size": 0.5, "reinforcement learning": 0.25, "rlhf": 1.0, "post-training": 1.0,
        "trainer": 1.0, "training job*": 2.0, "training run*": 1.5, "trained on": 0.25,
    },
    "hardware": {
        "hardware": 1.5, "gpu": 0.75, "cpu": 0.5, "nvidia": 1.5, "h100": 1.0, "a100": 0.75, "hopper": 1.5,
        "ampere": 1.5, "ada lovelace": 2.0, "blackwell": 2.0, "tpu": 2.0, "npu": 2.0, "accelerator*": 2.0,
        "kernel": 1.0, "co-design": 2.0, "codesign": 2.0, "dataflow": 2.0, "compiler*": 2.0,
        "memory hierarchy": 2.0, "memory bandwidth": 1.0, "hbm": 1.5, "sram": 2.0, "dram": 1.5,
        "energy efficien*": 1.0, "energy": 0.5, "power consumption": 1.0, "mac": 1.5,
        "multiply-accumulate": 2.0, "processing element*": 2.0, "silicon": 1.5, "die area": 2.0,
        "instruction set": 2.0, "isa": 1.5, "simd": 2.0, "warp": 1.5, "thread block*": 2.0,
        "shared memory": 1.5, "mpi": 2.0, "hpc": 1.5, "high-performance computing": 1.5,
        "performance portab*": 2.0, "heterogeneous": 0.75, "microcontroller*": 2.0, "mcu": 2.0,
        "tinyml": 2.0, "neuromorphic": 2.0, "softmax": 0.75, "matmul": 2.0, "gemv": 2.0, "spmv": 2.0,
        "tiling": 1.0, "operator fusion": 2.0, "tensor program*": 2.0, "triton": 1.5, "cutlass": 2.0,
        "cublas": 2.0, "flashattention": 1.5, "flash attention": 1.5, "io-aware": 2.0, "chip": 1.5,
        "bit-serial": 2.0, "reverse engineer*": 1.5, "performance analysis": 1.0,
        "performance characterization": 1.5, "profiling": 0.75, "circuit*": 1.0, "memory access*": 1.0,
        "arithmetic intensity": 2.0, "flops": 0.5, "tflops": 1.0, "utilization": 0.5, "ops": 0.5,
        "in-storage": 2.0, "near-memory": 2.0, "edge tpu": 2.0, "chiplet*": 3.0, "on-chip": 2.0,
    },
    "architectures": {
        "attention mechanism": 1.0, "self-attention": 0.5, "attention": 0.25, "quadratic": 1.0,
        "linear complexity": 1.5, "recurrent": 1.5, "recurrence": 1.5, "long sequence*": 1.0,
        "long-range": 1.0, "transformer architecture": 1.0, "architecture": 0.5, "transformer": 0.25,
        "novel architecture": 1.0, "mixture of expert*": 0.75, "router*": 1.0, "routing": 1.0,
        "layer skip*": 1.5, "adaptive depth": 1.5, "adaptive computation": 1.5, "dynamic depth": 1.5,
        "modular": 1.0, "modularity": 1.0, "gating": 1.0, "gated": 0.75, "memory unit*": 1.5,
        "spiking": 2.0, "positional encoding*": 1.5, "position embedding*": 1.0, "rotary": 1.0,
        "residual connection*": 1.5, "shallow": 1.0, "deep network*": 0.5, "language model*": 0.25,
        "darts": 1.5, "supernet*": 1.5, "search space": 1.0, "token mixer*": 1.0, "token mixing": 1.0,
        "hybrid architecture*": 1.5, "inductive bias": 1.0, "expressiv*": 0.5, "hidden state*": 1.0,
        "convolution*": 0.25, "kernel size": 0.5, "depth": 0.25, "width": 0.25, "layer*": 0.25,
    },
    "video-generation": {
        "video": 0.5, "frame": 0.5, "motion": 1.0, "temporal consistency": 1.5,
        "temporally consistent": 1.5, "temporal coherence": 1.5, "temporally coherent": 1.5,
        "animation": 2.0, "animat*": 1.0, "long video*": 1.0, "minute-long": 2.0, "camera control": 2.0,
        "camera motion": 1.5, "motion control*": 2.0, "diffusion transformer*": 0.75, "dit": 0.5,
        "world model*": 1.0, "game engine*": 1.0, "fvd": 2.0, "vbench": 2.5, "sora": 2.0,
        "keyframe*": 1.5, "storyboard*": 1.5, "video vae": 2.0, "video foundation model*": 2.0,
        "lip sync*": 2.0, "dance": 1.0, "sticker*": 1.0, "generated video*": 2.0, "video clip*": 1.0,
        "video content": 1.0, "live animation": 2.0, "talking": 1.0,
    },
    "image-generation": {
        "diffusion": 1.0, "diffusion model*": 1.5, "denois*": 1.0, "sampling": 0.75, "sampler*": 1.5,
        "sampling step*": 1.5, "guidance": 1.0, "classifier-free guidance": 2.0, "score matching": 2.0,
        "score function": 1.5, "generative model*": 1.0, "generative": 0.5, "gan": 2.0, "image": 0.25,
        "synthesi*": 0.75, "distillation": 0.75, "one-step": 1.5, "single-step": 1.5, "few-step": 1.5,
        "fid": 1.5, "inpainting": 1.5, "personaliz*": 1.0, "subject-driven": 2.0, "customiz*": 0.75,
        "style": 0.75, "aesthetic*": 1.0, "photorealistic": 0.75, "prompt*": 0.5, "flow matching": 1.0,
        "rectified flow": 1.5, "autoregressive image": 2.0, "next-scale": 2.0, "unet": 1.0, "u-net": 1.0,
        "vae": 0.75, "latent space": 0.5, "image quality": 0.75, "texture": 1.0, "sketch*": 1.0,
        "generated image*": 2.0, "image generator*": 3.0, "text prompt*": 1.0, "dall e": 2.0,
        "midjourney": 2.0, "imagen": 1.5, "clothing": 1.0, "composition": 0.5,
        # generative-modelling methods: image generation by default, but any modality can use them
        "denoising diffusion": 2.0, "latent diffusion": 2.0, "stable diffusion": 2.0, "score-based": 2.0,
        "consistency model*": 2.0, "normalizing flow*": 2.0, "generative adversarial network*": 2.0,
        "diffusion sampler*": 2.0, "fast sampling": 2.0, "diffusion distillation": 2.0,
    },
    "3d": {
        "3d": 1.5, "4d": 1.5, "mesh*": 2.0, "geometry": 1.0, "geometric": 0.5, "multi-view": 1.5,
        "multiview": 1.5, "novel view*": 2.0, "view synthesis": 2.0, "rendering": 1.5, "render*": 1.0,
        "splat*": 2.0, "gaussian*": 0.75, "volumetric": 1.5, "voxel*": 1.0, "point cloud*": 1.5,
        "depth": 0.5, "rgbd": 2.0, "rgb-d": 2.0, "camera pose*": 1.5, "scene reconstruction": 2.0,
        "reconstruction": 1.0, "human body": 1.0, "clothed": 1.5, "garment*": 1.5, "cloth*": 0.75,
        "character*": 0.5, "articulat*": 1.5, "rigging": 2.0, "skinning": 2.0, "skeleton*": 1.5,
        "texture*": 1.0, "pbr": 2.0, "material*": 0.75, "relight*": 1.5, "lighting": 0.75, "shape*": 1.0,
        "surface*": 1.0, "surfel*": 2.0, "implicit": 0.75, "sdf": 2.0, "occupancy": 1.5, "slam": 2.0,
        "structure from motion": 2.0, "photogrammetry": 2.0, "lidar": 1.0, "virtual reality": 1.0,
        "vr": 1.0, "ar": 0.5, "metaverse": 1.5, "digital twin*": 1.5, "game*": 0.5, "dynamic scene*": 2.0,
        "monocular video*": 1.0, "stereo": 1.0, "graphics": 1.5, "computer graphics": 2.0,
        "procedural": 1.0, "terrain": 1.0, "cad": 1.5, "asset*": 1.0, "object-centric": 0.5,
    },
    "vision": {
        "segmentation": 2.0, "segment*": 0.75, "detection": 1.0, "detector*": 1.5, "classification": 0.75,
        "recognition": 1.0, "backbone*": 1.5, "imagenet": 1.5, "coco": 1.5, "ade20k": 2.0,
        "cityscapes": 2.0, "cnn": 1.5, "convolution*": 1.0, "convolutional": 1.0, "vit": 1.5,
        "visual": 0.5, "vision": 0.75, "image*": 0.5, "pixel*": 0.75, "feature map*": 1.0,
        "receptive field*": 1.5, "depth": 0.75, "tracking": 1.5, "re-identification": 2.0,
        "self-supervised": 1.0, "contrastive": 0.5, "representation learning": 1.0,
        "fine-grained classification": 1.5, "autonomous driving": 1.5, "self-driving": 1.5,
        "road scene*": 1.5, "remote sensing": 1.5, "medical imag*": 1.5, "video prediction": 1.5,
        "frame prediction": 1.0, "action recognition": 2.5, "scene understanding": 1.5, "mobile": 0.5,
        "lightweight": 0.5, "efficient network*": 1.0, "low-level vision": 2.0, "image compression": 2.0,
        "manipulation detection": 2.0, "computer vision": 1.0, "forgery": 2.0, "open-vocabulary": 1.0,
        "visual perception": 1.5,
        "perception": 0.75, "zero-shot classification": 1.0, "clip": 0.5, "occlusion*": 0.75,
        "keypoint*": 1.5, "matching": 0.5, "image denoising": 2.0, "deblur*": 2.0, "dehaz*": 2.0,
        "visual feature*": 1.0, "mask*": 0.25, "bounding box*": 2.0, "anomaly detection": 1.0,
    },
    "multimodal": {
        "multimodal": 1.5, "multi-modal": 1.5, "language model*": 0.25, "visual token*": 2.0,
        "video token*": 2.0, "visual instruction": 2.0, "instruction tuning": 1.0, "caption*": 1.5,
        "question answering": 1.0, "chat": 0.5, "assistant*": 0.75, "grounding": 1.5, "retrieval": 0.5,
        "image-text": 1.5, "text-image": 1.0, "clip": 1.0, "modalit*": 1.0, "cross-modal": 1.5,
        "omni": 2.0, "streaming video": 1.5, "long video*": 1.0, "video stream*": 1.5,
        "live stream*": 1.0, "visual reasoning": 2.0, "reasoning": 0.25, "embodied": 1.0,
        "document understanding": 1.5, "chart*": 1.0, "vision encoder*": 1.5, "visual encoder*": 1.5,
        "projector": 1.0, "llava": 2.0, "gpt-4v": 2.0, "gpt 4v": 2.0, "real-time understanding": 1.5,
        "understanding": 0.5, "video": 0.5, "natural language": 0.5, "text and image*": 1.0,
        "visual question*": 2.0, "interleaved": 1.0, "benchmark*": 0.25,
    },
    "audio": {
        "sound": 1.0, "listener*": 1.0, "hearing": 1.0, "mel": 1.5, "phoneme*": 2.0, "prosody": 2.0,
        "utterance*": 2.0, "speaker*": 2.0, "audio-visual": 1.0, "talking": 0.5, "noise suppression": 1.5,
        "enhancement": 0.25, "dialogue": 0.5, "pitch": 1.5, "timbre": 2.0, "sampling rate": 1.5, "khz": 2.0,
    },
    "reasoning": {
        "reasoning": 1.0, "reason": 0.75, "think*": 1.0, "thought*": 1.0, "math*": 1.0, "problem solving": 1.0,
        "reinforcement learning": 1.0, "rl": 0.75, "reward*": 0.5, "verifier*": 1.0, "verification": 0.5,
        "self-reflection": 1.0, "reflection": 0.75, "self-correction": 1.0, "step-by-step": 1.0,
        "multi-step reasoning": 1.5, "exploration": 0.5, "entropy": 0.75, "rollout*": 1.0, "advantage*": 1.0,
        "credit assignment": 1.0, "on-policy": 0.75, "off-policy": 0.75, "puzzle*": 1.0, "deepseek-r1": 2.0,
        "r1": 1.0, "o1": 1.0, "answer*": 0.25, "inference compute": 1.5, "thinking budget": 2.0,
        "reasoning length": 2.0, "response length": 1.5, "proof*": 1.0, "lean": 1.0, "geometry problem*": 1.5,
    },
    "agents": {
        "agent*": 1.5, "tool*": 1.0, "environment*": 0.5, "planning": 0.75, "planner": 0.75, "workflow*": 1.0,
        "trajectori*": 1.0, "long-horizon": 1.5, "multi-turn": 0.75, "interactive": 0.5, "autonomous*": 0.75,
        "api*": 0.75, "browser*": 1.5, "webpage*": 1.5, "web": 0.75, "desktop": 1.5, "android": 1.5,
        "smartphone*": 1.0, "app*": 0.5, "harness": 1.5, "scaffold*": 1.0, "orchestrat*": 1.0,
        "information seeking": 1.5, "information-seeking": 1.5, "search": 0.5, "self-evolv*": 1.0,
        "skill*": 1.0, "memory": 0.5, "action*": 0.5, "sandbox*": 1.0, "task completion": 1.0,
        "collaborat*": 0.5, "role-play*": 1.0, "assistant*": 0.5,
    },
    "code": {
        "code": 1.5, "program*": 1.0, "software": 1.5, "repositor*": 1.0, "github": 1.0, "developer*": 1.0,
        "compiler": 0.5, "execution": 0.75, "executable": 1.0, "test case*": 1.5, "bug*": 1.5, "debug*": 1.5,
        "python": 1.0, "java": 1.5, "sql": 1.5, "function*": 0.25, "library": 0.5, "html": 1.0,
        "front-end": 1.0, "frontend": 1.0, "issue*": 0.5, "patch*": 0.75, "pull request*": 1.5,
        "formal verification": 1.0, "terminal": 1.0, "coder": 2.0,
    },
    "safety": {
        "attack*": 1.0, "adversarial": 1.0, "defense*": 1.0, "defend*": 1.0, "threat*": 1.0, "malicious": 1.5,
        "vulnerab*": 1.5, "exploit*": 0.75, "alignment": 0.75, "aligned": 0.5, "harm*": 1.0, "unsafe": 1.5,
        "bias*": 0.5, "fairness": 1.0, "ethic*": 1.0, "moral*": 0.75, "value*": 0.25, "audit*": 1.0,
        "oversight": 1.5, "reliab*": 0.5, "factual*": 0.75, "faithful*": 0.75, "steering": 1.0,
        "interpretab*": 1.0, "mechanistic": 1.5, "circuit*": 0.5, "probing": 0.75, "forget*": 0.5,
        "copyright": 1.5, "leak*": 1.0, "poison*": 1.5, "robustness": 0.5, "secure": 1.0, "governance": 1.0,
    },
    "evaluation": {
        "benchmark*": 1.5, "evaluat*": 1.0, "bench": 1.5, "assess*": 0.75, "judge*": 1.0, "metric*": 0.75,
        "leaderboard": 1.5, "human expert*": 1.0, "gap*": 0.5, "reveal*": 0.5, "limitation*": 0.5,
        "systematic study": 1.0, "analysis": 0.5, "dataset": 0.5, "task*": 0.25, "score*": 0.25,
        "annotat*": 0.5, "rubric*": 1.0, "struggle*": 0.75, "fail*": 0.5, "frontier model*": 0.75,
    },
    "retrieval": {
        "retriev*": 1.5, "search": 0.75, "query": 1.0, "queries": 1.0, "document*": 0.75, "corpus": 0.75,
        "knowledge": 0.75, "embedding*": 1.0, "index*": 0.75, "passage*": 1.0, "memory": 1.0, "recall": 0.5,
        "ranking": 1.0, "question answering": 0.5, "multi-hop": 1.0, "graph": 0.5, "user*": 0.25,
        "item*": 0.5, "click-through": 2.0, "ctr": 1.5, "personaliz*": 0.5, "cache": 0.25,
    },
    "robotics": {
        "robot": 2.0, "policy": 0.75, "policies": 0.75, "action*": 0.75, "control*": 0.5, "real-world": 0.5,
        "simulation": 0.75, "simulator*": 1.0, "physical": 0.5, "trajectory": 0.75, "egocentric": 0.75,
        "navigation": 1.5, "vehicle*": 1.5, "planning": 0.5, "end-effector": 2.0, "gripper": 2.0, "arm": 1.0,
        "tabletop": 1.5, "demonstration*": 0.75, "world model*": 0.75, "lidar": 2.0, "bev": 1.5, "libero": 2.0,
        "embodiment*": 1.5, "drone*": 1.5, "uav*": 1.5,
    },
    "science": {
        "science": 1.0, "scientist*": 1.5, "research": 0.25, "discovery": 1.0, "health": 1.0, "disease*": 1.5,
        "biomedic*": 1.5, "cell*": 1.0, "gene*": 0.5, "enzyme*": 2.0, "material*": 0.75, "atom*": 1.5,
        "quantum": 1.0, "simulation*": 0.5, "equation*": 1.0, "pde*": 2.0, "fluid*": 1.5, "particle*": 1.0,
        "astronom*": 2.0, "geospatial": 1.5, "earth observation": 2.0, "satellite": 1.0, "remote sensing": 2.0,
        "ecg": 2.0, "mri": 2.0, "ct": 1.0, "x-ray": 1.5, "imaging": 0.75, "pet": 0.5, "doctor*": 1.5,
        "hospital*": 1.5, "psychiatr*": 2.0, "mental health": 2.0, "therapy": 1.5, "mathematician*": 1.5,
        "conjecture*": 1.5, "theorem*": 0.5, "physic*": 1.0, "microscopy": 2.0, "battery": 1.5, "traffic": 1.0,
    },
}


# Topics about one kind of model: without a mention of that kind anywhere in the paper, the topic's
# score is multiplied by CONTEXT_PENALTY ("inference acceleration" of a mobile CNN is not LLM serving).
REQUIRES: dict[str, tuple[str, ...]] = {
    "llm-inference": (
        "llm*", "language model*", "transformer*", "token*", "gpt*", "moe", "mixture of expert*", "attention",
        "decoder*", "chatbot*", "prompt*", "generative inference",
    ),
}
CONTEXT_PENALTY = 0.5


@dataclass
class Evidence:
    """What the rules found for one topic in one paper."""

    score: float = 0.0
    matched: list[str] = field(default_factory=list)  # phrases, "title:" / "kw:" prefixed by where
    excluded_by: str | None = None


@dataclass(frozen=True)
class TopicRules:
    slug: str
    phrases: tuple[tuple[Phrase, float], ...]
    excludes: tuple[Phrase, ...]
    requires: tuple[Phrase, ...] = ()
    # gram ("kv cache") -> position in ``phrases`` of the one- and two-word exact phrases (see ``Grams``)
    gram_positions: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False)


def described_phrases(name: str, description: str) -> list[str]:
    """The phrases a topic's name and description list ("speech, music and audio models" → speech,
    music, audio models): evidence even for a topic configured with a description only."""
    parts = re.split(r"[,;/&()]|\band\b|\bor\b|\bits\b", f"{name}, {description}", flags=re.IGNORECASE)
    return [p.strip() for p in parts if len(p.strip()) > 2]


@lru_cache(maxsize=256)
def compile_rules(slug: str, keywords: tuple[str, ...], exclude: tuple[str, ...],
                  name: str = "", description: str = "") -> TopicRules:
    weights: dict[str, float] = dict(BUILTIN.get(slug, {}))
    # A single word of the description is weak evidence next to a vocabulary, but all there is without one.
    word_weight = DESCRIPTION_WORD_WEIGHT if weights or keywords else DESCRIPTION_WEIGHT
    for described in described_phrases(name, description):
        weight = DESCRIPTION_WEIGHT if len(described.split()) > 1 or "-" in described else word_weight
        weights[described] = max(weights.get(described, 0.0), weight)
    for kw in keywords:
        weights[kw] = max(weights.get(kw, 0.0), KEYWORD_WEIGHT)
    compiled: dict[str, tuple[Phrase, float]] = {}
    for text, weight in weights.items():
        phrase = compile_phrase(text)
        if phrase is None:
            continue
        key = phrase.exact or (phrase.pattern.pattern if phrase.pattern else text)
        if key not in compiled or compiled[key][1] < weight:
            compiled[key] = (phrase, weight)
    excludes = tuple(p for p in (compile_phrase(t) for t in exclude) if p is not None)
    requires = tuple(p for p in (compile_phrase(t) for t in REQUIRES.get(slug, ())) if p is not None)
    phrases = tuple(sorted(compiled.values(), key=lambda pw: pw[0].text))
    grams = {p.gram: i for i, (p, _) in enumerate(phrases) if p.gram is not None}
    return TopicRules(slug, phrases, excludes, requires, grams)


def combined(title: str, abstract: str, feed_keywords: Sequence[str]) -> str:
    """Every field of a paper in one string (fields apart, so no phrase spans two): one test per phrase
    tells whether it occurs at all, before counting where."""
    return "|".join((title, abstract, *feed_keywords))


def rule_evidence(rules: TopicRules, title: str, abstract: str, feed_keywords: Sequence[str],
                  everything: str | None = None, words: DocWords | None = None,
                  candidates: Sequence[int] | None = None,
                  fields: tuple[DocWords, DocWords] | None = None, explain: bool = True,
                  grams: Grams | None = None) -> Evidence:
    """Score one topic for one paper; ``title``/``abstract``/``feed_keywords`` are ``joined()`` strings,
    ``everything`` their ``combined()`` form and ``words`` its distinct words (computed when not given).
    ``candidates``: positions of the only phrases worth testing; default all.
    ``fields``: ``DocWords`` of the title and of the abstract, made once per paper (computed when not given).
    ``explain``: list the matched phrases (``Evidence.matched``); off, only the score is computed.
    ``grams``: the paper's ``Grams`` (same tokens as the strings): one- and two-word phrases are counted there."""
    everything = combined(title, abstract, feed_keywords) if everything is None else everything
    words = DocWords(everything.replace("|", " ")) if words is None else words
    if grams is not None:  # the gram phrases found by lookup, the others as candidates (or all of them)
        pool = range(len(rules.phrases)) if candidates is None else candidates
        hits = {rules.gram_positions[g] for g in rules.gram_positions.keys() & grams.present}
        candidates = sorted(hits.union(i for i in pool if rules.phrases[i][0].gram is None))
    if candidates is not None and not candidates and not rules.excludes:
        return Evidence()  # no phrase of this topic can be in the paper
    phrases = rules.phrases if candidates is None else [rules.phrases[i] for i in candidates]
    ev = Evidence()
    for phrase in rules.excludes:
        if phrase.possible(words) and phrase.count(everything):
            ev.excluded_by = phrase.text
            return ev
    from_abstract = 0.0
    found: list[tuple[float, str]] = []
    title_words, abstract_words = fields if fields is not None else (DocWords(title), DocWords(abstract))
    for phrase, weight in phrases:
        if grams is not None and phrase.gram is not None:
            gram = phrase.gram
            in_title = grams.title.get(gram, 0)
            in_abstract = grams.abstract.get(gram, 0)
            in_keywords = grams.keywords.get(gram, 0)
            if not (in_title or in_abstract or in_keywords):
                continue
        else:
            if candidates is None and not phrase.possible(words):
                continue
            if not phrase.single_prefix and not phrase.count(everything):
                continue
            in_title = title_words.count(phrase)
            in_abstract = abstract_words.count(phrase)
            in_keywords = sum(1 for k in feed_keywords if phrase.count(k)) if feed_keywords else 0
        direct = weight * (TITLE_WEIGHT * bool(in_title) + FEED_KEYWORD_WEIGHT * min(in_keywords, 2))
        mentioned = weight * _REPEATS[min(in_abstract, len(_REPEATS) - 1)]
        ev.score += direct
        from_abstract += mentioned
        if explain:
            where = "title" if in_title else "keywords" if in_keywords and not in_abstract else "abstract"
            found.append((direct + mentioned, f"{phrase.text} ({where}, +{direct + mentioned:.1f})"))
    ev.matched = [text for _, text in sorted(found, key=lambda f: (-f[0], f[1]))]
    ev.score += _damped(from_abstract)
    if rules.requires and ev.score and not any(p.possible(words) and p.count(everything) for p in rules.requires):
        ev.score *= CONTEXT_PENALTY
        if explain:
            ev.matched.append(f"(no mention of {rules.requires[0].text} or the like: x{CONTEXT_PENALTY})")
    return ev


def _damped(points: float) -> float:
    """Abstract evidence beyond ABSTRACT_KNEE counts at ABSTRACT_SLOPE: many passing mentions (an
    abstract's context and applications) must not outweigh what the title says the paper is about."""
    return points if points <= ABSTRACT_KNEE else ABSTRACT_KNEE + (points - ABSTRACT_KNEE) * ABSTRACT_SLOPE


"""Sample sentences from a trained language model.

    python -m rnnlab.generate ckpt_path=outputs/lm_ptb/checkpoints/last.ckpt prompt="the company" \\
        temperature=0.8 top_k=50 seed=0 max_length=40 num_samples=3

Each sample starts from ``<bos>`` and the prompt and stops at ``<eos>`` or after ``max_length`` words.
"""

from __future__ import annotations

import sys

from omegaconf import OmegaConf

from rnnlab.tasks.lm import LanguageModelModule

DEFAULTS = {"ckpt_path": None, "prompt": "", "temperature": 1.0, "top_k": 0, "seed": 0, "max_length": 50,
            "num_samples": 1, "device": "cpu"}


def generate(ckpt_path: str, prompt: str = "", temperature: float = 1.0, top_k: int = 0, seed: int = 0,
             max_length: int = 50, num_samples: int = 1, device: str = "cpu") -> list[str]:
    """Loads a ``LanguageModelModule`` checkpoint and returns ``num_samples`` lines, prompt included.

    Sample ``i`` uses seed ``seed + i``, so the same arguments always give the same lines.
    """
    module = LanguageModelModule.load_from_checkpoint(ckpt_path, map_location=device)
    words = str(prompt).split()  # a prompt such as 1987 arrives as a number
    return [" ".join([*words, *module.sample(words, max_length, temperature, top_k, seed + i)])
            for i in range(num_samples)]


def main(argv: list[str] | None = None) -> None:
    """Reads ``key=value`` arguments (see ``DEFAULTS``) and prints one sample per line."""
    options = OmegaConf.create(DEFAULTS)
    OmegaConf.set_struct(options, True)  # a misspelt option is an error, not silently ignored
    options = OmegaConf.merge(options, OmegaConf.from_cli(sys.argv[1:] if argv is None else argv))
    if not options.ckpt_path:
        raise SystemExit("usage: python -m rnnlab.generate ckpt_path=PATH [prompt=\"...\"] [temperature=1.0] "
                         "[top_k=0] [seed=0] [max_length=50] [num_samples=1]")
    for line in generate(**OmegaConf.to_container(options)):
        print(line)


if __name__ == "__main__":
    main()

"""Summarise a py-spy `--format raw` profile: where the server's samples went, by function."""

from __future__ import annotations

import sys
from collections import Counter


def main() -> None:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in open(sys.argv[1]):
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    print(f"{total} samples\n-- self --")
    for frame, count in own.most_common(limit):
        print(f"{count / total:6.1%}  {frame}")
    print("-- inclusive --")
    for frame, count in inclusive.most_common(limit * 2):
        print(f"{count / total:6.1%}  {frame}")


if __name__ == "__main__":
    main()

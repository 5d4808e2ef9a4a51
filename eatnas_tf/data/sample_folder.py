"""A small image folder of real RGB JPEG content, written from scikit-learn's two sample
photos: for tests, benchmarks and a first try of `--dataset=folder:DIR` without data of
one's own (nothing is downloaded).

Four classes (the left or right half of the "china" or "flower" photo), each image a
`size`×`size` crop at a random position and scale, saved as JPEG:

    ROOT/train/<class>/NNNNN.jpg, ROOT/test/<class>/NNNNN.jpg

File names are one running index over all splits, so the data layer's order (sorted
paths per class) is the order of writing.

    files = write_photo_folder("/tmp/photos", {"train": 80, "test": 60})
    files["test"][0]   # ("/tmp/photos/test/china_left/00320.jpg", 0)
"""

from __future__ import annotations

import os
from typing import Dict, List, Mapping, Tuple

import numpy as np

CLASSES = ("china_left", "china_right", "flower_left", "flower_right")


def write_photo_folder(root: str, per_class: Mapping[str, int], size: int = 32,
                       seed: int = 0, quality: int = 90) -> Dict[str, List[Tuple[str, int]]]:
    """Writes `per_class[split]` images of each class for every split; returns
    {split: [(path, label), ...]} in the order written."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images  # china, flower: 427 x 640 RGB
    rs = np.random.RandomState(seed)
    files: Dict[str, List[Tuple[str, int]]] = {split: [] for split in per_class}
    i = 0
    for split, n in per_class.items():
        for _ in range(n):
            for label, name in enumerate(CLASSES):
                img = photos[label // 2]
                h, w = img.shape[:2]
                side = int(rs.randint(40, 120))
                y = int(rs.randint(0, h - side))
                x = (0 if label % 2 == 0 else w // 2) + int(rs.randint(0, w // 2 - side))
                crop = Image.fromarray(img[y:y + side, x:x + side]).resize((size, size),
                                                                         Image.BILINEAR)
                d = os.path.join(root, split, name)
                os.makedirs(d, exist_ok=True)
                path = os.path.join(d, f"{i:05d}.jpg")
                crop.save(path, quality=quality)
                files[split].append((path, label))
                i += 1
    return files

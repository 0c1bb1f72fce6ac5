"""The Cluttered MNIST settings: FULL (the official code) and QUICK (a CPU check), each field sourced.

Sources: the paper is arXiv:1611.01353 (Fig. 2, Table 2b; its text past the abstract could not be
reached here, see docs/reproduction.md); the official code is
``ucla-vision/information-dropout`` (``cluttered.py``, ``task.py``, ``README.md``).
``docs/reproduction-cluttered.md`` holds the same table with the reasons in full.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ClutteredConfig:
    """One setting of the experiment. Every field is recorded in ``config.json``."""

    # Data.
    canvas: int  # image side in pixels
    distractors: int  # 8x8 crops of other digits per image
    n_train: int  # training images (drawn from the training digits)
    n_test: int  # test images (drawn from the test digits)
    # Network.
    widths: tuple[int, ...]  # channels of each block; its last conv has stride 2 and Information Dropout
    top_width: int  # channels of the head's 3x3 and 1x1 convs
    convs_per_block: int  # 3x3 convs per block, the stride-2 one included
    activation: str  # "relu" or "softplus"
    prior: str  # "log-uniform" (relu) or "log-normal" (softplus)
    max_alpha: float  # cap of the noise scale alpha
    # Training.
    betas: tuple[float, ...]  # the beta grid
    lr: float  # Nesterov momentum (0.9) learning rate
    lr_drops: tuple[int, ...]  # epochs after which lr is multiplied by 0.1
    epochs: int
    batch_size: int
    distractor_size: int = 8  # DeepMind mnist-cluttered's crop side (official README.md:20 names that generator)
    seeds: tuple[int, ...] = (0,)
    show: int = 3  # test images in the heat-map figure
    threads: int | None = None  # CPU threads; None: the backend's default
    # None: the official alpha branch (its own 3x3 stride-2 conv with a bias); r: InfoDropout's cheap
    # alpha branch of rank r (a 3x3 stride-2 conv to r channels, then a 1x1 conv with a bias).
    alpha_rank: int | None = None

    def check(self) -> None:
        """Reject settings the measures cannot use (three Information Dropout layers are reported)."""
        if len(self.widths) < 3:
            raise ValueError(f"widths needs >= 3 blocks (layers 1-3 are measured); received {self.widths}")
        if self.canvas < 28 or self.convs_per_block < 1 or not 0 < self.max_alpha <= 1:
            raise ValueError(f"invalid canvas / convs_per_block / max_alpha in {self}")
        if self.show < 1 or self.n_test < 1 or self.n_train < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"show, n_test, n_train, epochs and batch_size must be >= 1 in {self}")
        if any(b < 0 for b in self.betas) or not self.betas:
            raise ValueError(f"betas must be a non-empty list of values >= 0; received {self.betas}")
        if self.alpha_rank is not None and (isinstance(self.alpha_rank, bool) or self.alpha_rank < 1):
            raise ValueError(f"alpha_rank must be None or an int >= 1; received {self.alpha_rank}")
        if (self.activation, self.prior) not in {("relu", "log-uniform"), ("softplus", "log-normal")}:
            raise ValueError(f"activation {self.activation!r} goes with its own prior; received {self.prior!r}")


FULL = ClutteredConfig(
    canvas=96,  # cluttered.py:14 (img_h, img_w = 96, 96); paper Sec. 6
    distractors=21,  # issue 13's reading of the paper (unchecked); official data: DeepMind's generator, README.md:20
    n_train=60000,  # the official data set was made from MNIST's 60k training digits (README.md:20)
    n_test=10000,  # MNIST's 10k test digits
    widths=(32, 64, 96, 192),  # cluttered.py:123-137; paper Table 2b
    top_width=192,  # cluttered.py:139-140
    convs_per_block=3,  # cluttered.py:123-125 (conv, conv, conv_dropout)
    activation="relu",  # cluttered.py:30 (activations = 'relu')
    prior="log-uniform",  # cluttered.py:33 (lognorm_prior = False); softplus/log-normal: cluttered.py:38-41
    max_alpha=1.0,  # cluttered.py:32
    betas=(0.0, 0.1, 0.25, 0.5),  # README.md:66 ("use beta <= 0.5"); cluttered.py:31 default 0.5; 0 = no KL
    lr=0.01,  # cluttered.py:19; Nesterov momentum 0.9: cluttered.py:24 + task.py:121-122
    lr_drops=(30, 60),  # cluttered.py:20-21; factor 0.1: task.py:17, task.py:185-190
    epochs=80,  # cluttered.py:22
    batch_size=128,  # cluttered.py:18
)

QUICK = dataclasses.replace(
    FULL,
    canvas=48,  # a quarter of the pixels (4x less compute); 48 = 8 * 6 keeps layers 1-3 on exact grids
    distractors=6,  # 21 * (48/96)^2 = 5.25 keeps the full clutter density; rounded up
    n_train=10000,  # 2 images per offline training digit (5,000); enough to classify, small enough for CPU
    n_test=2000,  # from the official 10k test digits: 2,000 give the shares to about 0.01
    widths=(8, 16, 32, 64),  # a quarter of the official widths (as the official filter_percentage=0.25): CPU budget
    top_width=64,  # a third of 192: the head of the narrower network
    convs_per_block=2,  # one conv fewer per block: CPU budget (the stride-2 noisy conv is kept)
    # beta weighs KL / n_train: with 6x fewer training images each unit's alpha feels 6x the pressure of
    # the same beta in FULL, so quick 0.05 and 0.1 match official 0.3 and 0.6; 0.5 (official 3) is kept
    # as the case the official README warns against (beta <= 0.5 there).
    betas=(0.0, 0.05, 0.1, 0.5),
    lr=0.05,  # official cifar.py's lr: at 0.01 the 8-epoch run was still at 82% training error after 2 epochs
    lr_drops=(6, 7),  # x0.1 twice as the official schedule, but late: 0.05 needs ~4 epochs to leave the plateau
    epochs=8,  # CPU budget (<= 20 minutes per backend on 2 cores)
    threads=1,  # on a shared 2-core machine two threads spin-wait: one was 3-6x faster in CPU time per epoch
)

"""A tiny network that counts the images it sees, and extractors around it.

Used to check that wrappers around an image Pipeline extract the features once
(the Pipeline's leading steps with ``fit_learns_from_data = False``).
"""

import numpy as np
import torch

from sklearn_ood import TorchFeatureExtractor


class CountingNet(torch.nn.Module):
    """A tiny convolutional net counting the images it sees (class attribute:
    the extractor works on a copy of the module)."""

    rows = 0

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in self.conv.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))

    def forward(self, x):
        type(self).rows += x.shape[0]
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


class FrozenExtractor(TorchFeatureExtractor):
    # What TorchFeatureExtractor declares: fit builds the network and learns
    # nothing from X. Declared here too so the test runs on any branch.
    fit_learns_from_data = False


class LearningExtractor(TorchFeatureExtractor):
    fit_learns_from_data = True


def images(n, seed):
    return np.random.RandomState(seed).randint(0, 256, size=(n, 8, 8), dtype=np.uint8)

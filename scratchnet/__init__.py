"""scratchnet: a convolutional neural network library written from scratch on NumPy and Numba.

It exists to show how a CNN works inside, and to train small real networks fast on a CPU.
It imports only numpy and numba.
"""

from scratchnet.base import Layer, Parameter
from scratchnet.conv import Conv2D
from scratchnet.io import atomic_write
from scratchnet.pooling import AvgPool2D, MaxPool2D

__all__ = ["AvgPool2D", "Conv2D", "Layer", "MaxPool2D", "Parameter", "atomic_write"]

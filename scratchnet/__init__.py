"""scratchnet: a convolutional neural network library written from scratch on NumPy and Numba.

It exists to show how a CNN works inside, and to train small real networks fast on a CPU.
It imports only numpy and numba.
"""

from scratchnet.base import Layer, Parameter
from scratchnet.io import atomic_write

__all__ = ["Layer", "Parameter", "atomic_write"]

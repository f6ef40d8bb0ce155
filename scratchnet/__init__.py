"""scratchnet: a convolutional neural network library written from scratch on NumPy and Numba.

It exists to show how a CNN works inside, and to train small real networks fast on a CPU.
It imports only numpy and numba (and threadpoolctl, to keep BLAS on one thread: see blas.py).
"""

from scratchnet import gradcheck, init
from scratchnet.activations import ELU, ReLU, Sigmoid, Softmax
from scratchnet.base import Layer, Parameter
from scratchnet.conv import Conv2D
from scratchnet.io import atomic_write, load, register_layer, save
from scratchnet.layers import Dense, Dropout, Flatten
from scratchnet.losses import SoftmaxCrossEntropy
from scratchnet.model import Callback, EarlyStopping, History, Sequential
from scratchnet.normalization import BatchNorm1D, BatchNorm2D
from scratchnet.onnx_export import export_onnx
from scratchnet.optim import SGD, Adam, Optimizer
from scratchnet.pooling import AvgPool2D, MaxPool2D

__all__ = [
    "ELU", "SGD", "Adam", "AvgPool2D", "BatchNorm1D", "BatchNorm2D", "Callback", "Conv2D",
    "Dense", "Dropout", "EarlyStopping", "Flatten", "History", "Layer", "MaxPool2D",
    "Optimizer", "Parameter", "ReLU", "Sequential", "Sigmoid", "Softmax", "SoftmaxCrossEntropy",
    "atomic_write", "export_onnx", "gradcheck", "init", "load", "register_layer", "save",
]

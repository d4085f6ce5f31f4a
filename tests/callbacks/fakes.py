"""A stand-in for the model a callback drives: what the callbacks touch, nothing more."""


class Optimizer:
    def __init__(self, rate):
        self.learning_rate = rate


class Model:
    """What the callbacks touch: the optimizer's rate, stop_training, the weights."""

    def __init__(self, rate=0.1):
        self.optimizer = Optimizer(rate)
        self.stop_training = False
        self.epoch = 0
        self.restored = None

    def get_weights(self):
        return [f"weights after epoch {self.epoch}"]

    def set_weights(self, weights):
        self.restored = weights

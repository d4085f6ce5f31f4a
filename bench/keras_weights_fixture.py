"""Write tests/fixtures/keras3_mlp.weights.h5, keras3_mlp.keras (the whole model: config,
compile config, weights), keras3_adam.keras with keras3_adam_next_step.npz (an optimizer state,
and the weights one step later), and keras3_mlp_expected.npz: a small MLP with
every layer type gpunet has (Normalization, Dense, Dropout, BatchNormalization, Activation),
its weights saved by Keras 3 itself, and Keras's predictions on fixed inputs, so the suite
checks that gpunet reads Keras's .weights.h5 layout without Keras installed. With
`--check FILE`, instead load a gpunet-written .weights.h5 into the same Keras model and print
the largest difference from the predictions stored in FILE.npz.

    pip install keras jax h5py   # in a separate environment
    KERAS_BACKEND=jax python bench/keras_weights_fixture.py
    KERAS_BACKEND=jax python bench/keras_weights_fixture.py --check /tmp/gpunet.weights.h5
"""

import pathlib
import sys

import keras
import numpy as np

FIXTURES = pathlib.Path(__file__).parent.parent / "tests" / "fixtures"


def model():
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Normalization(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(5, activation="tanh"),
            keras.layers.Dense(3),
            keras.layers.Activation("softmax"),
        ]
    )


rs = np.random.default_rng(0)
x = rs.normal(size=(16, 6)).astype("float32") * 3 + 1
if sys.argv[1:2] == ["--check"]:
    path = pathlib.Path(sys.argv[2])
    m = keras.saving.load_model(str(path)) if path.suffix == ".keras" else model()
    if path.suffix != ".keras":
        m.load_weights(str(path))
    stored = np.load(str(path).split(".")[0] + ".npz")  # x and gpunet's predictions
    got = m.predict(stored["x"], verbose=0)
    difference = np.abs(got - stored["predictions"]).max()
    print(f"keras {keras.__version__}: max |keras - gpunet| = {difference:.3g}")
    sys.exit(0)
keras.utils.set_random_seed(1)
m = model()
m.layers[0].adapt(x)
m.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.5), loss="categorical_crossentropy",
          metrics=["accuracy"])  # fmt: skip
m.fit(x, np.eye(3)[np.arange(16) % 3], epochs=3, verbose=0)  # moves the BatchNorm statistics
m.save_weights(str(FIXTURES / "keras3_mlp.weights.h5"))
m.save(str(FIXTURES / "keras3_mlp.keras"))
np.savez(FIXTURES / "keras3_mlp_expected.npz", x=x, predictions=m.predict(x, verbose=0))
# An optimizer state Keras saved (Adam, amsgrad: every kind of slot group), and the weights
# after one more step on the same batch: gpunet, loading the file, must take the same step.
keras.utils.set_random_seed(2)
small = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="tanh"),
                          keras.layers.Dense(3)])  # fmt: skip
small.compile(optimizer=keras.optimizers.Adam(0.01, amsgrad=True), loss="mse")
target = np.tanh(x[:, :3])
small.fit(x, target, batch_size=16, epochs=3, shuffle=False, verbose=0)
small.save(str(FIXTURES / "keras3_adam.keras"))
small.fit(x, target, batch_size=16, epochs=1, shuffle=False, verbose=0)
np.savez(FIXTURES / "keras3_adam_next_step.npz", target=target,
         **{f"w{i}": w for i, w in enumerate(small.get_weights())})  # fmt: skip
print(f"wrote the fixtures (Keras {keras.__version__})")

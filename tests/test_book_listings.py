"""Listings from the Keras books, with only the imports changed (issue 16), on the real
Fashion-MNIST with the epochs and data shortened to keep CI fast. They fail at the first name
or behaviour gpunet lacks."""

import numpy as np
import pytest

import gpunet as keras  # the only change: `from tensorflow import keras` / `import keras`

pytestmark = pytest.mark.usefixtures("fashion_mnist_folder")


def test_geron_chapter_10_image_classifier_with_the_sequential_api(capsys):
    fashion_mnist = keras.datasets.fashion_mnist
    (X_train_full, y_train_full), (X_test, y_test) = fashion_mnist.load_data()
    X_train_full, y_train_full = X_train_full[:7000], y_train_full[:7000]  # shortened
    X_valid, X_train = X_train_full[:5000] / 255.0, X_train_full[5000:] / 255.0
    y_valid, y_train = y_train_full[:5000], y_train_full[5000:]
    class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip

    keras.backend.clear_session()
    model = keras.models.Sequential()
    model.add(keras.layers.Flatten(input_shape=[28, 28]))
    model.add(keras.layers.Dense(300, activation="relu"))
    model.add(keras.layers.Dense(100, activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.summary()

    hidden1 = model.layers[1]
    assert hidden1.name == "dense"
    assert model.get_layer("dense") is hidden1
    weights, biases = hidden1.get_weights()
    assert weights.shape == (784, 300) and biases.shape == (300,) and not biases.any()

    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    history = model.fit(X_train, y_train, epochs=2, validation_data=(X_valid, y_valid))
    assert history.params["epochs"] == 2 and sorted(history.history) == [
        "accuracy", "loss", "val_accuracy", "val_loss"]  # fmt: skip
    loss, accuracy = model.evaluate(X_test[:1000], y_test[:1000])
    assert accuracy > 0.5

    X_new = X_test[:3]
    y_proba = model.predict(X_new)
    assert y_proba.round(2).shape == (3, 10)
    y_pred = np.argmax(model.predict(X_new), axis=-1)
    assert len(np.array(class_names)[y_pred]) == 3
    out = capsys.readouterr().out
    assert 'Model: "sequential"' in out and "Epoch 2/2" in out and "val_accuracy" in out


def test_keras_mnist_mlp_example_on_fashion_mnist():
    from gpunet.layers import Dense, Dropout
    from gpunet.models import Sequential
    from gpunet.optimizers import RMSprop

    batch_size, num_classes, epochs = 128, 10, 1
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    x_train, y_train, x_test, y_test = x_train[:4000], y_train[:4000], x_test[:1000], y_test[:1000]
    x_train = x_train.reshape(4000, 784).astype("float32") / 255
    x_test = x_test.reshape(1000, 784).astype("float32") / 255
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)

    model = Sequential()
    model.add(Dense(512, activation="relu", input_shape=(784,)))
    model.add(Dropout(0.2))
    model.add(Dense(512, activation="relu"))
    model.add(Dropout(0.2))
    model.add(Dense(num_classes, activation="softmax"))
    model.summary()
    model.compile(loss="categorical_crossentropy", optimizer=RMSprop(), metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=1,
                        validation_data=(x_test, y_test))  # fmt: skip
    score = model.evaluate(x_test, y_test, verbose=0)
    assert len(history.history["loss"]) == 1
    assert 0.0 < score[0] < 2.0 and 0.5 < score[1] <= 1.0
    assert dict(zip(model.metrics_names, score)).keys() == {"loss", "accuracy"}


def test_geron_callbacks_and_the_functions_the_chapter_uses():
    (x, y), _ = keras.datasets.fashion_mnist.load_data()
    x = keras.utils.normalize(x[:3000].reshape(3000, -1).astype("float32"))
    y = y[:3000]
    keras.utils.set_random_seed(42)
    model = keras.Sequential([
        keras.Input(shape=(784,)),
        keras.layers.Dense(64, activation=keras.activations.relu,
                           kernel_regularizer=keras.regularizers.l2(0.001)),
        keras.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])  # fmt: skip
    early_stopping_cb = keras.callbacks.EarlyStopping(patience=1, restore_best_weights=True)
    history = model.fit(x, y, epochs=3, validation_split=0.1, verbose=0,
                        callbacks=[early_stopping_cb])  # fmt: skip
    assert "val_sparse_categorical_accuracy" in history.history
    first = model.train_on_batch(x[:32], y[:32])
    assert isinstance(first, list) and len(first) == 2
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict_on_batch(x[:8]), model.predict_on_batch(x[:8]))


def test_keras_guide_training_with_a_pydataset_and_a_generator():
    # "Training & evaluation with the built-in methods" (keras.io guide), its PyDataset section;
    # then the same data from a Python generator with steps_per_epoch.
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    x_train = x_train[:6000].reshape(6000, 784).astype("float32") / 255
    y_train = y_train[:6000].astype("float32")
    x_val, y_val = x_train[-1000:], y_train[-1000:]
    x_train, y_train = x_train[:-1000], y_train[:-1000]

    def get_compiled_model():
        inputs = keras.Input(shape=(784,), name="digits")
        model = keras.Sequential(
            [
                inputs,
                keras.layers.Dense(64, activation="relu", name="dense_1"),
                keras.layers.Dense(64, activation="relu", name="dense_2"),
                keras.layers.Dense(10, activation="softmax", name="predictions"),
            ]
        )
        model.compile(
            optimizer="rmsprop",
            loss="sparse_categorical_crossentropy",
            metrics=["sparse_categorical_accuracy"],
        )
        return model

    class ExamplePyDataset(keras.utils.PyDataset):
        def __init__(self, x, y, batch_size, **kwargs):
            super().__init__(**kwargs)
            self.x = x
            self.y = y
            self.batch_size = batch_size

        def __len__(self):
            return int(np.ceil(len(self.x) / float(self.batch_size)))

        def __getitem__(self, idx):
            batch_x = self.x[idx * self.batch_size : (idx + 1) * self.batch_size]
            batch_y = self.y[idx * self.batch_size : (idx + 1) * self.batch_size]
            return batch_x, batch_y

    train_py_dataset = ExamplePyDataset(x_train, y_train, batch_size=32)
    val_py_dataset = ExamplePyDataset(x_val, y_val, batch_size=32)
    model = get_compiled_model()
    history = model.fit(train_py_dataset, batch_size=64, validation_data=val_py_dataset, epochs=1)
    assert history.history["val_sparse_categorical_accuracy"][0] > 0.6

    def generator(batch_size=64):
        while True:
            for i in range(0, len(x_train), batch_size):
                yield x_train[i : i + batch_size], y_train[i : i + batch_size]

    model = get_compiled_model()
    model.fit(generator(), steps_per_epoch=40, epochs=2, verbose=2)
    results = model.evaluate(ExamplePyDataset(x_test[:512].reshape(-1, 784) / 255,
                                              y_test[:512], 128), verbose=0)  # fmt: skip
    assert results[1] > 0.6
    assert model.predict(generator(), steps=2, verbose=0).shape == (128, 10)

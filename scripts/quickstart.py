"""Train the README's model on the real Fashion-MNIST and report test accuracy (about a minute on
two CPU cores). Until `gpunet train configs/quickstart.yaml` lands, this is the main job."""

import argparse

import numpy as np

import gpunet as gn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = gn.datasets.fashion_mnist.load_data()
    # The Keras books' float32 pipeline: flatten to 784, scale to [0, 1], one-hot labels.
    x_train = x_train.reshape(len(x_train), 784).astype(np.float32) / 255.0
    x_test = x_test.reshape(len(x_test), 784).astype(np.float32) / 255.0
    y_train, y_test = gn.utils.to_categorical(y_train, 10), gn.utils.to_categorical(y_test, 10)

    gn.utils.set_random_seed(args.seed)
    model = gn.Sequential(
        [
            gn.layers.Input((784,)),
            gn.layers.Dense(128, activation="relu"),
            gn.layers.Dropout(0.3),
            gn.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        loss="categorical_crossentropy", optimizer=gn.optimizers.Adam(), metrics=["accuracy"]
    )
    model.summary()
    model.fit(x_train, y_train, batch_size=128, epochs=args.epochs, validation_split=0.2)
    loss, acc = model.evaluate(x_test, y_test)
    print(f"Test loss: {loss:.4f} - test accuracy: {acc:.4f}")


if __name__ == "__main__":
    main()

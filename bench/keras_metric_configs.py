"""Write tests/fixtures/keras3_metric_configs.json: `keras.metrics.serialize` of each metric
class gpunet has, made by Keras 3 itself, so the suite checks that gpunet reads Keras's
serialized metrics without Keras installed.

    pip install keras jax   # in a separate environment
    KERAS_BACKEND=jax python bench/keras_metric_configs.py
"""

import json
import pathlib

import keras

CLASSES = [
    "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "MeanSquaredError",
    "MeanAbsoluteError", "MeanAbsolutePercentageError", "RootMeanSquaredError", "AUC",
    "Precision", "Recall",
]  # fmt: skip
OPTIONS = {"TopKCategoricalAccuracy": {"k": 3, "name": "top3"}, "AUC": {"num_thresholds": 50}}

configs = {
    name: keras.metrics.serialize(getattr(keras.metrics, name)(**OPTIONS.get(name, {})))
    for name in CLASSES
}
out = pathlib.Path(__file__).parent.parent / "tests" / "fixtures" / "keras3_metric_configs.json"
out.write_text(json.dumps({"keras": keras.__version__, "configs": configs}, indent=1) + "\n")
print(f"wrote {out} (Keras {keras.__version__})")

"""The README's Python example runs as written (fewer epochs), on the real Fashion-MNIST."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_python_example_runs(fashion_mnist_folder, capsys):
    with open(os.path.join(ROOT, "README.md")) as f:
        (code,) = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    assert "epochs=20" in code
    namespace = {}
    exec(code.replace("epochs=20", "epochs=2"), namespace)  # noqa: S102 (our own README)
    assert namespace["acc"] > 0.8
    assert namespace["probs"].shape == (10000, 10)
    assert len(namespace["history"].history["val_accuracy"]) == 2
    assert "Total params: 101,770" in capsys.readouterr().out

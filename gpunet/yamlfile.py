"""YAML as configs need it: safe tags only, YAML 1.2 floats, duplicate keys refused, size bounded.

PyYAML follows YAML 1.1, where `1e-3` is a string (a float needs a dot) and a repeated key
silently replaces the first; and its composer recurses once per nesting level, while aliases
let a few lines stand for billions of nodes. Configs are small: bound them while loading.
"""

from __future__ import annotations

import re

import yaml

from gpunet.messages import excerpt

MAX_BYTES = 1 << 20  # a config is a few hundred bytes; this bounds the parser's work
MAX_DEPTH = 50  # nesting levels; a config has four
MAX_NODES = 100_000  # nodes with every alias expanded, as validation would walk them


class YamlError(ValueError):
    """A document refused; `line` is 1-based, or None when the fault has no single place."""

    def __init__(self, line: int | None, problem: str):
        self.line, self.problem = line, problem
        super().__init__(f"line {line}: {problem}" if line else problem)


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts its nesting depth and refuses a key given twice in one mapping."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise YamlError(line, f"nested deeper than {MAX_DEPTH} levels.")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` keys may be overridden: that is what merging means
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base constructor says so
                if first is not None:
                    raise YamlError(
                        line,
                        f"key {excerpt(key)} is given twice (first on line {first}); keep one.",
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 floats that YAML 1.1 reads as strings: an exponent without a dot (1e-3, 5E-4), an
# exponent without a sign (1.0e3), a signed leading dot (-.5). The 1.1 resolvers run first, so
# ints stay ints and this one sees only what they refused.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def _expanded_size(node, sizes: dict, open_nodes: set) -> int:
    """Nodes in the tree `node` stands for, each alias counted as a copy of what it names."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise YamlError(node.start_mark.line + 1, "an alias refers to a node that contains it.")
    open_nodes.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    else:
        children = []
    for child in children:
        size += _expanded_size(child, sizes, open_nodes)
        if size > MAX_NODES:
            raise YamlError(
                node.start_mark.line + 1,
                f"the document expands to more than {MAX_NODES:,} nodes "
                "(aliases repeat what they name); a config needs a few dozen.",
            )
    open_nodes.discard(key)
    sizes[key] = size
    return size


def load(text: str):
    """Parse one YAML document (a config, or a `--set` value); raise YamlError or yaml.YAMLError."""
    if len(text) > MAX_BYTES:
        raise YamlError(None, f"{len(text):,} characters; a config may have at most {MAX_BYTES:,}.")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set())
        return loader.construct_document(node)
    finally:
        loader.dispose()

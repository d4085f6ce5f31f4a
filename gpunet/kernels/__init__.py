"""Stateless forward/backward math, written once against the array module `xp`."""

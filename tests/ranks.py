"""Worlds of ranks in one process, for tests of what data-parallel training does on each rank
(gpunet/distributed.py): `ranks` for a World's arithmetic alone, `Alone` for a rank that trains
as if the others summed nothing."""

from gpunet import distributed


def ranks(rank: int, size: int) -> distributed.World:
    """A World's arithmetic (shards, batch sizes) for rank `rank` of `size`, with no MPI."""
    world = object.__new__(distributed.World)
    world.rank, world.size, world.writes = rank, size, rank == 0
    return world


class Alone(distributed.World):
    """Rank `rank` of `size`, alone in this process: a sum over the ranks is this rank's own
    part (enough to see what each rank prints and writes)."""

    def __init__(self, rank: int, size: int):
        self.rank, self.size, self.writes, self.timeout = rank, size, rank == 0, 5.0

    def all_sum(self, array, out=None, what=""):
        out = array if out is None else out
        if out is not array:
            out[...] = array
        return out

    def agree(self, values, what=""):
        return [int(v) for v in values]

    def from_rank_0(self, make, what=""):
        return make()

    def settle(self, array, what=""):
        pass

    def prepare_device(self, xp):
        pass

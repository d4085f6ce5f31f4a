"""Fused CUDA kernels for the GPU training step (float32), compiled by CuPy's NVRTC on first use.

Not yet wired into the layers: none of them has run on a GPU (this project's machines have
none so far). On the CPU, CI checks that the source compiles with NVRTC for sm_80 and sm_90;
`pytest -m gpu` compares each kernel with its NumPy counterpart on a GPU.

Dropout's stream offset and the step count live in device memory (`offset`, `step`), so a captured
CUDA graph replays with fresh dropout masks and the right Adam step without host traffic.
"""

from __future__ import annotations

import functools

ACTIVATIONS = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}
ARCHITECTURES = ("compute_80", "compute_90")

SOURCE = r"""
extern "C" {

// Activation of the output's value: 0 linear, 1 relu, 2 sigmoid, 3 tanh.
__device__ __forceinline__ float activate(float z, int act) {
    if (act == 1) return z > 0.f ? z : 0.f;
    if (act == 2) return 1.f / (1.f + __expf(-z));
    if (act == 3) return tanhf(z);
    return z;
}

// Its derivative, written from the output y (so z need not be kept).
__device__ __forceinline__ float activate_grad(float y, int act) {
    if (act == 1) return y > 0.f ? 1.f : 0.f;
    if (act == 2) return y * (1.f - y);
    if (act == 3) return 1.f - y * y;
    return 1.f;
}

// z = act(z + bias), in place; z is (rows, units) row-major.
__global__ void bias_act_fwd(float* z, const float* bias, int rows, int units, int act) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < rows * units) z[i] = activate(z[i] + bias[i % units], act);
}

// gy *= act'(y), in place.
__global__ void act_bwd(float* gy, const float* y, int n, int act) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) gy[i] *= activate_grad(y[i], act);
}

// Softmax + cross-entropy + gradient, one thread per row (class counts are small).
// loss_i = logsumexp(z_i) - z_i[label_i]; grad = (softmax(z) - onehot) * scale.
// The batch's loss sum is added to *loss_sum (device memory: no host sync per step).
__global__ void softmax_xent_sparse(const float* z, const long long* labels, float* probs,
                                    float* grad, float* loss_sum, int rows, int classes,
                                    float scale) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* zr = z + (long long)r * classes;
    float top = zr[0];
    for (int c = 1; c < classes; ++c) top = fmaxf(top, zr[c]);
    float total = 0.f;
    for (int c = 0; c < classes; ++c) total += __expf(zr[c] - top);
    long long label = labels[r];
    for (int c = 0; c < classes; ++c) {
        float p = __expf(zr[c] - top) / total;
        probs[(long long)r * classes + c] = p;
        grad[(long long)r * classes + c] = (p - (c == label ? 1.f : 0.f)) * scale;
    }
    atomicAdd(loss_sum, top + __logf(total) - zr[label]);
}

// The same with dense (one-hot or soft) targets t: loss_i = lse * sum(t_i) - t_i . z_i.
__global__ void softmax_xent_dense(const float* z, const float* t, float* probs, float* grad,
                                   float* loss_sum, int rows, int classes, float scale) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* zr = z + (long long)r * classes;
    const float* tr = t + (long long)r * classes;
    float top = zr[0];
    for (int c = 1; c < classes; ++c) top = fmaxf(top, zr[c]);
    float total = 0.f, tsum = 0.f, tz = 0.f;
    for (int c = 0; c < classes; ++c) {
        total += __expf(zr[c] - top);
        tsum += tr[c];
        tz += tr[c] * zr[c];
    }
    for (int c = 0; c < classes; ++c) {
        float p = __expf(zr[c] - top) / total;
        probs[(long long)r * classes + c] = p;
        grad[(long long)r * classes + c] = (p * tsum - tr[c]) * scale;
    }
    atomicAdd(loss_sum, (top + __logf(total)) * tsum - tz);
}

// splitmix64's step and finalizer: the draw key's mixer (kernels/dropout.py).
__device__ __forceinline__ unsigned long long splitmix64(unsigned long long z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// lowbias32: the unit hash of kernels/dropout.py.
__device__ __forceinline__ unsigned int lowbias32(unsigned int x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16);
}

// Inverted dropout, bit for bit the xp path (kernels/dropout.py): the draw at the stream's
// offset (*offset, in device memory) has key k = lo32(splitmix64(seed ^ splitmix64(offset)));
// unit i is kept when lowbias32(lowbias32(i) ^ k) >= threshold; mask = kept * scale, y = x * mask.
__global__ void dropout_fwd(const float* x, float* y, float* mask, int n,
                            unsigned long long seed, unsigned int threshold, float scale,
                            const unsigned long long* offset) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int key = (unsigned int)splitmix64(seed ^ splitmix64(offset[0]));
    float keep = lowbias32(lowbias32((unsigned int)i) ^ key) >= threshold ? scale : 0.f;
    mask[i] = keep;
    y[i] = x[i] * keep;
}

// The next draw starts after this one's units: *offset += n.
__global__ void advance_offset(unsigned long long* offset, unsigned long long n) {
    if (blockIdx.x == 0 && threadIdx.x == 0) offset[0] += n;
}

// SGD, Keras rule without momentum: w -= lr * g; lr in device memory (schedules, graphs).
__global__ void sgd_update(float* w, const float* g, int n, const float* lr) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) w[i] -= lr[0] * g[i];
}

// Adam, Keras rule, over the whole flat parameter vector in one launch:
// m += (1-b1)(g-m); v += (1-b2)(g^2-v); w -= lr sqrt(1-b2^t)/(1-b1^t) m/(sqrt(v)+eps),
// with t = *step + 1 read from device memory (increment_step bumps it after the update).
__global__ void adam_update(float* w, const float* g, float* m, float* v, int n,
                            const float* lr, const int* step, float b1, float b2, float eps) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float t = (float)(step[0] + 1);
    float alpha = lr[0] * sqrtf(1.f - powf(b2, t)) / (1.f - powf(b1, t));
    float gi = g[i];
    float mi = m[i] + (gi - m[i]) * (1.f - b1);
    float vi = v[i] + (gi * gi - v[i]) * (1.f - b2);
    m[i] = mi;
    v[i] = vi;
    w[i] -= (mi * alpha) / (sqrtf(vi) + eps);
}

__global__ void increment_step(int* step) {
    if (blockIdx.x == 0 && threadIdx.x == 0) step[0] += 1;
}

// Running accuracy on the device: correct += (argmax(probs_r) == label_r) per row.
__global__ void accuracy_count(const float* probs, const long long* labels, int rows,
                               int classes, float* correct) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* pr = probs + (long long)r * classes;
    int best = 0;
    for (int c = 1; c < classes; ++c) if (pr[c] > pr[best]) best = c;
    if (best == labels[r]) atomicAdd(correct, 1.f);
}

}  // extern "C"
"""

KERNELS = (
    "bias_act_fwd",
    "act_bwd",
    "softmax_xent_sparse",
    "softmax_xent_dense",
    "dropout_fwd",
    "advance_offset",
    "sgd_update",
    "adam_update",
    "increment_step",
    "accuracy_count",
)


@functools.cache
def module():
    """The compiled RawModule (CuPy only; compiled once per process)."""
    import cupy

    return cupy.RawModule(code=SOURCE, options=("--std=c++14",))


def launch(name: str, size: int, *args, block: int = 256) -> None:
    """Run kernel `name` over `size` threads."""
    module().get_function(name)(((size + block - 1) // block,), (block,), args)

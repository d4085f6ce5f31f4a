// Shared device helpers of gpunet's CUDA kernels: the activations (forward and derivative) and
// the dropout hash. Every formula mirrors its xp oracle in gpunet/kernels/.
// Built with --fmad=false: a * b + c rounds twice, as NumPy's two ufuncs do.

// Activation codes: the order of ACTIVATIONS in gpunet/cuda/kernels.py.
#define ACT_LINEAR 0
#define ACT_RELU 1
#define ACT_SIGMOID 2
#define ACT_TANH 3
#define ACT_SOFTPLUS 4
#define ACT_SOFTSIGN 5
#define ACT_ELU 6
#define ACT_SELU 7
#define ACT_LEAKY_RELU 8
#define ACT_GELU 9
#define ACT_SILU 10
#define ACT_HARD_SIGMOID 11
#define ACT_EXPONENTIAL 12

#define SELU_ALPHA 1.6732632423543772f
#define SELU_SCALE 1.0507009873554805f
#define LEAKY_SLOPE 0.2f

__device__ __forceinline__ float sigmoid_of(float z) {
    // exp(-log(1 + exp(-z))): never overflows (the xp form).
    float t = -z;
    float lae = fmaxf(t, 0.f) + log1pf(expf(-fabsf(t)));  // logaddexp(0, t)
    return expf(-lae);
}

// y = act(z).
__device__ __forceinline__ float act_fwd(float z, int act) {
    switch (act) {
    case ACT_RELU: return z < 0.f ? 0.f : z;  // NaN passes, as NumPy's maximum
    case ACT_SIGMOID: return sigmoid_of(z);
    case ACT_TANH: return tanhf(z);
    case ACT_SOFTPLUS: return fmaxf(z, 0.f) + log1pf(expf(-fabsf(z)));
    case ACT_SOFTSIGN: return z / (fabsf(z) + 1.f);
    case ACT_ELU: return z <= 0.f ? expm1f(fminf(z, 0.f)) : z;
    case ACT_SELU:
        return z <= 0.f ? expm1f(fminf(z, 0.f)) * (SELU_ALPHA * SELU_SCALE) : z * SELU_SCALE;
    case ACT_LEAKY_RELU: return fmaxf(z, z * LEAKY_SLOPE);
    case ACT_GELU: return z * ((erff(z * 0.70710678118654752f) + 1.f) * 0.5f);
    case ACT_SILU: return z * sigmoid_of(z);
    case ACT_HARD_SIGMOID: {
        float t = z * (1.f / 6.f) + 0.5f;
        return t < 0.f ? 0.f : (t > 1.f ? 1.f : t);  // NaN passes, as NumPy's clip
    }
    case ACT_EXPONENTIAL: return expf(z);
    default: return z;
    }
}

// dy/dz at (z, y = act(z)).
__device__ __forceinline__ float act_grad(float z, float y, int act) {
    switch (act) {
    case ACT_RELU: return y > 0.f ? 1.f : 0.f;
    case ACT_SIGMOID: return (1.f - y) * y;
    case ACT_TANH: return 1.f - y * y;
    case ACT_SOFTPLUS: return sigmoid_of(z);
    case ACT_SOFTSIGN: { float d = fabsf(z) + 1.f; return 1.f / (d * d); }
    case ACT_ELU: return y > 0.f ? 1.f : y + 1.f;
    case ACT_SELU: return y > 0.f ? SELU_SCALE : y + SELU_ALPHA * SELU_SCALE;
    case ACT_LEAKY_RELU: return y > 0.f ? 1.f : LEAKY_SLOPE;
    case ACT_GELU: {
        // d/dz z * Phi(z) = Phi(z) + z * phi(z)
        float pdf = expf(z * z * -0.5f) * (z * 0.3989422804014327f);
        return pdf + (erff(z * 0.70710678118654752f) + 1.f) * 0.5f;
    }
    case ACT_SILU: { float s = sigmoid_of(z); return ((1.f - s) * z + 1.f) * s; }
    case ACT_HARD_SIGMOID: return (y > 0.f && y < 1.f) ? 1.f / 6.f : 0.f;
    case ACT_EXPONENTIAL: return y;
    default: return 1.f;
    }
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

// The dropout keep factor of unit i in the draw at `offset` of stream `seed`: 1 / (1 - rate)
// when lowbias32(lowbias32(i) ^ key) >= threshold, else 0; key = lo32(splitmix64(seed ^
// splitmix64(offset))). Bit for bit the xp path.
__device__ __forceinline__ float dropout_keep(unsigned int i, unsigned long long seed,
                                             unsigned long long offset, unsigned int threshold,
                                             float scale) {
    unsigned int key = (unsigned int)splitmix64(seed ^ splitmix64(offset));
    return lowbias32(lowbias32(i) ^ key) >= threshold ? scale : 0.f;
}

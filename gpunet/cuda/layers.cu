// Dense activations with dropout fused in, their backward, and the bias gradient.

// y = act(x + bias) * keep over the (rows, units) output, one thread per element; y may be x.
// bias may be null (bias added by the GEMM's epilogue, or use_bias=False). With z given, the
// pre-activation x + bias is kept there (activations whose derivative needs it, and dropout).
// With mask given (training with dropout), keep = dropout_keep(first * units + i, seed,
// *offset, ...) is written there too; else keep = 1. `first`: the row of the global batch where
// these rows start (a rank's shard in data-parallel training; else 0), so each unit's draw is
// its global one.
__global__ void bias_act_fwd(const float* x, const float* bias, float* z, float* y, float* mask,
                             int rows, int units, int act, unsigned long long seed,
                             const unsigned long long* offset, unsigned int threshold,
                             float scale, int first) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * units) return;
    float pre = bias ? x[i] + bias[i % units] : x[i];
    if (z) z[i] = pre;
    float out = act_fwd(pre, act);
    if (mask) {
        unsigned int unit = (unsigned int)((long long)first * units + i);
        float keep = dropout_keep(unit, seed, offset[0], threshold, scale);
        mask[i] = keep;
        out = out * keep;
    }
    y[i] = out;
}

// gz = (gy * mask) * act'(z, y): dropout's backward, then the activation's (the xp order).
// With a mask, y holds the dropped output, so the activation is recomputed from z.
// z, y or mask may be null where the activation or the layer does not need them.
__global__ void act_bwd(const float* gy, const float* z, const float* y, const float* mask,
                        float* gz, int n, int act) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = mask ? gy[i] * mask[i] : gy[i];
    float pre = z ? z[i] : 0.f;
    float out = mask ? act_fwd(pre, act) : y[i];
    gz[i] = g * act_grad(pre, out, act);
}

// gb[u] = sum over rows of g[r, u], one thread per unit, rows in order (repeatable): the bias
// gradient where no GEMM epilogue computes it.
__global__ void bias_grad(const float* g, float* gb, int rows, int units) {
    int u = blockIdx.x * blockDim.x + threadIdx.x;
    if (u >= units) return;
    float total = 0.f;
    for (int r = 0; r < rows; ++r) total += g[(long long)r * units + u];
    gb[u] = total;
}

// y = x rounded to bfloat16 (to nearest, ties to even; NaN stays NaN), as raw 16-bit words:
// the GEMM inputs of precision="bf16" (the float32 values stay the master copy).
__global__ void to_bf16(const float* x, unsigned short* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int u = __float_as_uint(x[i]);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
        y[i] = (unsigned short)((u >> 16) | 0x0040u);  // a quiet NaN
        return;
    }
    y[i] = (unsigned short)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

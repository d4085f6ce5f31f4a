// Optimizer updates over the flat parameter vector, one thread per parameter, each the xp
// rule's arithmetic in the xp rule's order (gpunet/optimizers/rules.py, base.py): gradient
// clipping by value, then decoupled weight decay, then the rule. Running products (beta^t)
// are read here and advanced after the update (step_end, nadam_advance).

// NumPy's maximum: NaN wins.
__device__ __forceinline__ float nan_max(float a, float b) { return (a != a || a > b) ? a : b; }

// clip(g, -clipvalue, clipvalue) when clipvalue >= 0 (NaN passes, as NumPy's clip).
__device__ __forceinline__ float clipped(float g, float clipvalue) {
    if (clipvalue < 0.f) return g;
    return g < -clipvalue ? -clipvalue : (g > clipvalue ? clipvalue : g);
}

// w - w * weight_decay * lr (base.py: _apply_weight_decay), when weight_decay != 0.
__device__ __forceinline__ float decayed(float w, float weight_decay, const float* lr) {
    return weight_decay != 0.f ? w - (w * weight_decay) * lr[0] : w;
}

// Adam's and Nadam's moments, in place: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2).
__device__ __forceinline__ void update_moments(float g, float* m, float* v, float one_minus_b1,
                                               float one_minus_b2) {
    *m = *m + (g - *m) * one_minus_b1;
    *v = *v + (g * g - *v) * one_minus_b2;
}

// SGD. From the scaled gradient step = -lr * g (negative_lr null: the loss scale -lr was
// applied in the loss kernel), or from g (negative_lr given: -lr, after clipping):
// plain: w += step; momentum: m = momentum * m + step, then w += m, or (nesterov)
// w += step + momentum * m.
__global__ void sgd_update(float* w, const float* g, float* m, int n, float momentum,
                           int nesterov, const float* negative_lr, float clipvalue,
                           float weight_decay, const float* lr) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float s = negative_lr ? clipped(g[i], clipvalue) * negative_lr[0] : g[i];
    float wi = decayed(w[i], weight_decay, lr);
    if (!m) {
        w[i] = wi + s;
        return;
    }
    float mi = m[i] * momentum + s;
    m[i] = mi;
    w[i] = wi + (nesterov ? s + mi * momentum : mi);
}

// RMSprop: v = rho v + (1 - rho) g^2;  centered: a = rho a + (1 - rho) g, d = v - a^2 + eps,
// else d = v + eps;  step = lr g / sqrt(d);  momentum: s = momentum s + step, w -= s; else
// w -= step. a and s may be null (not centered, no momentum).
__global__ void rmsprop_update(float* w, const float* g, float* v, float* a, float* s, int n,
                               const float* lr, float rho, float one_minus_rho, float momentum,
                               float epsilon, float clipvalue, float weight_decay) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = clipped(g[i], clipvalue);
    float wi = decayed(w[i], weight_decay, lr);
    float vi = v[i] * rho + (gi * gi) * one_minus_rho;
    v[i] = vi;
    float d;
    if (a) {
        float ai = a[i] * rho + gi * one_minus_rho;
        a[i] = ai;
        d = (vi - ai * ai) + epsilon;
    } else {
        d = vi + epsilon;
    }
    float step = (gi * lr[0]) / sqrtf(d);
    if (s) {
        float si = s[i] * momentum + step;
        s[i] = si;
        step = si;
    }
    w[i] = wi - step;
}

// Adagrad: acc += g^2;  w -= lr g / sqrt(acc + eps).
__global__ void adagrad_update(float* w, const float* g, float* acc, int n, const float* lr,
                               float epsilon, float clipvalue, float weight_decay) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = clipped(g[i], clipvalue);
    float wi = decayed(w[i], weight_decay, lr);
    float ai = acc[i] + gi * gi;
    acc[i] = ai;
    w[i] = wi - (gi * lr[0]) / sqrtf(ai + epsilon);
}

// Adam (Keras rule), AdamW with weight_decay > 0, amsgrad with vhat given:
// m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  vhat = max(vhat, v)
// w -= (m * alpha) / (sqrt(v or vhat) + eps),  alpha = float(sqrt(1 - b2^t) lr64 / (1 - b1^t))
// with b^t = beta_power * b.
__global__ void adam_update(float* w, const float* g, float* m, float* v, float* vhat, int n,
                            const float* lr, const double* lr64, const double* beta_1_power,
                            const double* beta_2_power, double beta_1, double beta_2,
                            float one_minus_b1, float one_minus_b2, float epsilon,
                            float clipvalue, float weight_decay) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double b1t = beta_1_power[0] * beta_1, b2t = beta_2_power[0] * beta_2;
    float alpha = (float)(sqrt(1.0 - b2t) * lr64[0] / (1.0 - b1t));
    float wi = decayed(w[i], weight_decay, lr);
    float gi = clipped(g[i], clipvalue);
    update_moments(gi, m + i, v + i, one_minus_b1, one_minus_b2);
    float mi = m[i], vi = v[i];
    if (vhat) {
        vi = nan_max(vhat[i], vi);
        vhat[i] = vi;
    }
    w[i] = wi - (mi * alpha) / (sqrtf(vi) + epsilon);
}

// Adamax: m += (g - m)(1 - b1);  u = max(b2 u, |g|);  w -= lr m / ((u + eps) (1 - b1^t)),
// with b1^t = beta_1_power * b1 and 1 - b1^t rounded to float32.
__global__ void adamax_update(float* w, const float* g, float* m, float* u, int n,
                              const float* lr, const double* beta_1_power, double beta_1,
                              float beta_2, float one_minus_b1, float epsilon, float clipvalue,
                              float weight_decay) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float correction = (float)(1.0 - beta_1_power[0] * beta_1);
    float wi = decayed(w[i], weight_decay, lr);
    float gi = clipped(g[i], clipvalue);
    float mi = m[i] + (gi - m[i]) * one_minus_b1;
    float ui = nan_max(u[i] * beta_2, fabsf(gi));
    m[i] = mi;
    u[i] = ui;
    w[i] = wi - (mi * lr[0]) / ((ui + epsilon) * correction);
}

// Nadam (Keras rule, momentum decay 0.96), from the products before this step (decay^t-1, P,
// beta_2^t-1): d = decay * 0.96; u_t = b1 (1 - 0.5 d); u_t1 = b1 (1 - 0.5 * 0.96 d);
// P' = P u_t; a = u_t1 / (1 - P' u_t1); b = (1 - u_t) / (1 - P'); c = 1 - beta_2^t, each
// rounded to float32; m, v as Adam's; w -= lr (m a + g b) / (sqrt(v / c) + eps).
__global__ void nadam_update(float* w, const float* g, float* m, float* v, int n,
                             const float* lr, const double* decay_power,
                             const double* u_product, const double* beta_2_power, double beta_1,
                             double beta_2, float one_minus_b1, float one_minus_b2,
                             float epsilon, float clipvalue, float weight_decay) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double d = decay_power[0] * 0.96;
    double u_t = (d * -0.5 + 1.0) * beta_1;
    double u_t1 = (d * (-0.5 * 0.96) + 1.0) * beta_1;
    double product = u_product[0] * u_t;
    float a = (float)(u_t1 / (1.0 - product * u_t1));
    float b = (float)((1.0 - u_t) / (1.0 - product));
    float c = (float)(1.0 - beta_2_power[0] * beta_2);
    float wi = decayed(w[i], weight_decay, lr);
    float gi = clipped(g[i], clipvalue);
    update_moments(gi, m + i, v + i, one_minus_b1, one_minus_b2);
    float mi = m[i], vi = v[i];
    float m_hat = mi * a + gi * b;
    w[i] = wi - (m_hat * lr[0]) / (sqrtf(vi / c) + epsilon);
}

// One thread, after nadam_update: decay^t = decay^(t-1) 0.96; P *= u_t; beta_2^t.
__global__ void nadam_advance(double* decay_power, double* u_product, double* beta_2_power,
                              double beta_1, double beta_2) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double d = decay_power[0] * 0.96;
    u_product[0] = u_product[0] * ((d * -0.5 + 1.0) * beta_1);
    decay_power[0] = d;
    beta_2_power[0] = beta_2_power[0] * beta_2;
}

// Norm clipping, in three launches without block cooperation:
// partials[s * parts + p] = the sum of g^2 over segment s's elements p, p + parts, ... (float64,
// so the norm does not depend on the order the parts are summed in, to float32 precision).
__global__ void sum_squares(const float* g, const int* starts, int segments, int parts,
                            double* partials) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= segments * parts) return;
    int s = t / parts, p = t % parts;
    double total = 0.0;
    for (int i = starts[s] + p; i < starts[s + 1]; i += parts) total += (double)g[i] * g[i];
    partials[t] = total;
}

// One thread: factor = limit / max(||g||, limit) for each segment (clipnorm), or one norm over
// all (global_norm != 0, global_clipnorm), into factors[s].
__global__ void clip_factors(const double* partials, int segments, int parts, float limit,
                             int global_norm, float* factors) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double everything = 0.0;
    for (int t = 0; t < segments * parts; ++t) everything += partials[t];
    for (int s = 0; s < segments; ++s) {
        double total = 0.0;
        for (int p = 0; p < parts; ++p) total += partials[s * parts + p];
        float norm = (float)sqrt(global_norm ? everything : total);
        factors[s] = limit / nan_max(norm, limit);
    }
}

// g[i] *= factors[the segment holding i].
__global__ void scale_segments(float* g, const int* starts, int segments, const float* factors,
                               int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int s = 0;
    while (s + 1 < segments && i >= starts[s + 1]) ++s;
    g[i] *= factors[s];
}

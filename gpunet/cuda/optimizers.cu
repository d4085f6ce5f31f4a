// Optimizer updates over the flat parameter vector, one thread per parameter, each the xp
// rule's arithmetic in the xp rule's order (gpunet/optimizers/rules.py).

// SGD from the scaled gradient step = -lr * g (the loss scale -lr applied in the loss kernel):
// plain: w += step; momentum: m = momentum * m + step, then w += m, or (nesterov)
// w += step + momentum * m.
__global__ void sgd_update(float* w, const float* step, float* m, int n, float momentum,
                           int nesterov) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float s = step[i];
    if (!m) {
        w[i] += s;
        return;
    }
    float mi = m[i] * momentum + s;
    m[i] = mi;
    w[i] += nesterov ? s + mi * momentum : mi;
}

// Adam (Keras rule), AdamW with weight_decay > 0, amsgrad with vhat given:
// w -= w * weight_decay * lr;  m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  vhat = max(vhat, v)
// w -= (m * alpha) / (sqrt(v or vhat) + eps),  alpha = float(lr64 sqrt(1 - b2^t) / (1 - b1^t))
// with b^t = beta_power * b (the powers advance in step_end, after the update).
__global__ void adam_update(float* w, const float* g, float* m, float* v, float* vhat, int n,
                            const float* lr, const double* lr64, const double* beta_1_power,
                            const double* beta_2_power, double beta_1, double beta_2,
                            float one_minus_b1, float one_minus_b2, float epsilon,
                            float weight_decay) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double b1t = beta_1_power[0] * beta_1, b2t = beta_2_power[0] * beta_2;
    float alpha = (float)(sqrt(1.0 - b2t) * lr64[0] / (1.0 - b1t));
    float wi = w[i];
    if (weight_decay != 0.f) wi -= (wi * weight_decay) * lr[0];
    float gi = g[i];
    float mi = m[i] + (gi - m[i]) * one_minus_b1;
    float vi = v[i] + (gi * gi - v[i]) * one_minus_b2;
    m[i] = mi;
    v[i] = vi;
    if (vhat) {
        vi = fmaxf(vhat[i], vi);
        vhat[i] = vi;
    }
    w[i] = wi - (mi * alpha) / (sqrtf(vi) + epsilon);
}

// Softmax cross-entropy from logits, with its gradient and each row's loss and hit, one thread
// per row (class counts are small). Rows are summed later, in order, by step_end: no atomics,
// so a run repeats bit for bit.
//
// p = softmax(z) (into probs); loss_r = log(total) - (z[label] - top), top the row max and
// total = sum exp(z - top): both terms stay small for any logits, where top + log(total) -
// z[label] loses digits once |top| is large. row_loss[r] = loss_r * w_r (float64);
// row_metric[r] = 1 where argmax p == label (the first maximum, as NumPy's argmax), else 0:
// the sample's accuracy.
// grad = (p - onehot(label)) * scale[0] * w_r, scale = the loss scale / N (device memory, so a
// captured graph follows a changing learning rate); grad may be null (evaluation).
// weights may be null (all 1).
__global__ void softmax_xent_sparse(const float* z, const long long* labels,
                                    const float* weights, const float* scale, float* probs,
                                    float* grad, double* row_loss, float* row_metric,
                                    int rows, int classes) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* zr = z + (long long)r * classes;
    float* pr = probs + (long long)r * classes;
    float top = zr[0];
    for (int c = 1; c < classes; ++c) top = fmaxf(top, zr[c]);
    float total = 0.f;
    for (int c = 0; c < classes; ++c) total += expf(zr[c] - top);
    long long label = labels[r];
    int best = 0;
    for (int c = 0; c < classes; ++c) {
        pr[c] = expf(zr[c] - top) / total;
        if (pr[c] > pr[best]) best = c;
    }
    float w = weights ? weights[r] : 1.f;
    float picked = (label >= 0 && label < classes) ? zr[label] : __int_as_float(0x7fc00000);  // NaN: a label out of range
    row_loss[r] = (double)((logf(total) - (picked - top)) * w);
    row_metric[r] = best == label ? 1.f : 0.f;
    if (grad) {
        float s = scale[0];
        float* gr = grad + (long long)r * classes;
        for (int c = 0; c < classes; ++c) {
            float g = pr[c] * s;
            if (c == label) g -= s;
            gr[c] = weights ? g * w : g;
        }
    }
}

// The same with dense (one-hot or soft) targets t: loss_r = log(total) * sum(t) - sum t (z -
// top); grad = (p * sum(t) - t) * scale[0] * w_r; row_metric[r] = (argmax p == argmax t).
__global__ void softmax_xent_dense(const float* z, const float* t, const float* weights,
                                   const float* scale, float* probs, float* grad,
                                   double* row_loss, float* row_metric, int rows,
                                   int classes) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* zr = z + (long long)r * classes;
    const float* tr = t + (long long)r * classes;
    float* pr = probs + (long long)r * classes;
    float top = zr[0];
    for (int c = 1; c < classes; ++c) top = fmaxf(top, zr[c]);
    float total = 0.f, tsum = 0.f, tz = 0.f;
    for (int c = 0; c < classes; ++c) {
        total += expf(zr[c] - top);
        tsum += tr[c];
        tz += tr[c] * (zr[c] - top);
    }
    int best = 0, target = 0;
    for (int c = 0; c < classes; ++c) {
        pr[c] = expf(zr[c] - top) / total;
        if (pr[c] > pr[best]) best = c;
        if (tr[c] > tr[target]) target = c;
    }
    float w = weights ? weights[r] : 1.f;
    row_loss[r] = (double)((logf(total) * tsum - tz) * w);
    row_metric[r] = best == target ? 1.f : 0.f;
    if (grad) {
        float s = scale[0];
        float* gr = grad + (long long)r * classes;
        for (int c = 0; c < classes; ++c) {
            float g = (pr[c] * tsum - tr[c]) * s;
            gr[c] = weights ? g * w : g;
        }
    }
}

// Binary cross-entropy from logits, mean over the units (the xp loss's from-logits form):
// loss_r = mean(max(z, 0) - z t + log1p(exp(-|z|))) * w_r;  p = sigmoid(z) (into probs);
// grad = ((p - t) * (1 / units)) * scale[0] * w_r;  row_metric[r] = binary accuracy, the
// fraction of units where (out > 0.5) == (t > 0.5), out = p, or z itself with
// metric_on_logits (from_logits=True: Keras's metrics see the model's output, the logits).
__global__ void sigmoid_xent(const float* z, const float* t, const float* weights,
                             const float* scale, float* probs, float* grad, double* row_loss,
                             float* row_metric, int rows, int units, int metric_on_logits) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* zr = z + (long long)r * units;
    const float* tr = t + (long long)r * units;
    float* pr = probs + (long long)r * units;
    float total = 0.f;
    int hits = 0;
    float inverse = 1.f / (float)units;
    for (int c = 0; c < units; ++c) {
        float zc = zr[c];
        total += (fmaxf(zc, 0.f) - zc * tr[c]) + log1pf(expf(-fabsf(zc)));
        float p = sigmoid_of(zc);
        pr[c] = p;
        float out = metric_on_logits ? zc : p;
        hits += (out > 0.5f) == (tr[c] > 0.5f);
    }
    float w = weights ? weights[r] : 1.f;
    row_loss[r] = (double)((total / (float)units) * w);
    row_metric[r] = (float)hits / (float)units;
    if (grad) {
        float s = scale[0];
        float* gr = grad + (long long)r * units;
        for (int c = 0; c < units; ++c) {
            float g = ((pr[c] - tr[c]) * inverse) * s;
            gr[c] = weights ? g * w : g;
        }
    }
}

// Mean squared error of a linear output y: loss_r = mean((y - t)^2) * w_r;
// grad = ((y - t) * (2 / units)) * scale[0] * w_r; row_metric[r] = 0 (no metric).
__global__ void mse(const float* y, const float* t, const float* weights, const float* scale,
                    float* grad, double* row_loss, float* row_metric, int rows, int units) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* yr = y + (long long)r * units;
    const float* tr = t + (long long)r * units;
    float total = 0.f;
    for (int c = 0; c < units; ++c) {
        float d = yr[c] - tr[c];
        total += d * d;
    }
    float w = weights ? weights[r] : 1.f;
    row_loss[r] = (double)((total / (float)units) * w);
    row_metric[r] = 0.f;
    if (grad) {
        float s = scale[0], factor = 2.f / (float)units;
        float* gr = grad + (long long)r * units;
        for (int c = 0; c < units; ++c) {
            float g = ((yr[c] - tr[c]) * factor) * s;
            gr[c] = weights ? g * w : g;
        }
    }
}

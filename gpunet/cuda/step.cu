// The step's bookkeeping on the device: the batch gather and the end-of-step counters.

// Row r of the batch is sample order[*position * batch + first + r] (first: where a rank's shard
// starts in the global batch; else 0): xb[r] = x[sample], and likewise
// y's rows (y_bytes bytes each: int64 labels or float targets) and w (may be null). One thread
// per element of the larger of x's and y's batch. The position lives in device memory, so a
// captured graph gathers the next batch on every replay.
__global__ void gather_batch(const float* x, const char* y, const float* w,
                             const long long* order, const int* position, int batch, int first,
                             int rows, int features, int y_bytes, float* xb, char* yb,
                             float* wb) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    long long start = (long long)position[0] * batch + first;
    if (i < rows * features) {
        int r = i / features;
        xb[i] = x[order[start + r] * features + i % features];
    }
    if (i < rows * y_bytes) {
        int r = i / y_bytes;
        yb[i] = y[order[start + r] * y_bytes + i % y_bytes];
    }
    if (w && i < rows) wb[i] = w[order[start + i]];
}

// One thread, after the update: the batch's loss total sum(row_loss) + rows * penalty, rows
// and parts in order (so a run repeats bit for bit), into step_totals[*position], the penalty
// the sum of `penalty_parts` partial sums (may be 0); the metric state [total, count] (may be
// null) += [sum(metric * w), sum(w)]; then *position += 1, each dropout stream's offset += its
// units per step, and each running product given (Adam's beta powers) *= its factor.
__global__ void step_end(const double* row_loss, const float* row_metric, const float* weights,
                         int rows, const double* penalty_partials, int penalty_parts,
                         double* step_totals, double* accuracy, int* position,
                         unsigned long long* offsets, const unsigned long long* increments,
                         int streams, double* product_1, double factor_1, double* product_2,
                         double factor_2) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double total = 0.0, hits = 0.0, count = 0.0, penalty = 0.0;
    for (int p = 0; p < penalty_parts; ++p) penalty += penalty_partials[p];
    for (int r = 0; r < rows; ++r) {
        float w = weights ? weights[r] : 1.f;
        total += row_loss[r];
        hits += (double)(row_metric[r] * w);
        count += (double)w;
    }
    if (step_totals) step_totals[position[0]] = total + penalty * rows;
    if (accuracy) {
        accuracy[0] += hits;
        accuracy[1] += count;
    }
    position[0] += 1;
    for (int k = 0; k < streams; ++k) offsets[k] += increments[k];
    if (product_1) product_1[0] *= factor_1;
    if (product_2) product_2[0] *= factor_2;
}

// Weight penalties (L1, L2) of the regularized variables [starts[s], stops[s]), coefficients
// l1[s], l2[s] (float32, as the xp Regularizer's):
// partials[s * parts + p] = sum over the part's elements of l1 |w| + l2 w^2 (float64).
__global__ void penalty_partials(const float* w, const int* starts, const int* stops,
                                 const float* l1, const float* l2, int segments, int parts,
                                 double* partials) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= segments * parts) return;
    int s = t / parts, p = t % parts;
    double total = 0.0;
    for (int i = starts[s] + p; i < stops[s]; i += parts) {
        double wi = (double)w[i];
        total += (double)l1[s] * fabs(wi) + (double)l2[s] * wi * wi;
    }
    partials[t] = total;
}

// g += c1[s] * sign(w), then g += c2[s] * w, over the regularized variables (the xp
// Regularizer.add_grad, c1 = scale * l1 and c2 = 2 * l2 * scale rounded to float32, in device
// memory: the loss scale moves with the learning rate). One thread per parameter.
__global__ void penalty_grad(const float* w, float* g, const int* starts, const int* stops,
                             const float* c1, const float* c2, int segments, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    for (int s = 0; s < segments; ++s) {
        if (i < starts[s] || i >= stops[s]) continue;
        float wi = w[i];
        float sign = wi > 0.f ? 1.f : (wi < 0.f ? -1.f : wi);  // sign(0) = 0, NaN stays
        float gi = g[i];
        if (c1[s] != 0.f) gi += c1[s] * sign;
        if (c2[s] != 0.f) gi += c2[s] * wi;
        g[i] = gi;
    }
}

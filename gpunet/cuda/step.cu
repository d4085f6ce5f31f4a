// The step's bookkeeping on the device: the batch gather and the end-of-step counters.

// Row r of the batch is sample order[*position * batch + r]: xb[r] = x[sample], and likewise
// y's rows (y_bytes bytes each: int64 labels or float targets) and w (may be null). One thread
// per element of the larger of x's and y's batch. The position lives in device memory, so a
// captured graph gathers the next batch on every replay.
__global__ void gather_batch(const float* x, const char* y, const float* w,
                             const long long* order, const int* position, int batch, int rows,
                             int features, int y_bytes, float* xb, char* yb, float* wb) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    long long start = (long long)position[0] * batch;
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

// One thread, after the update: the batch's loss total sum(row_loss), rows in order (so a run
// repeats bit for bit), into step_totals[*position]; the accuracy state [total, count] (may be
// null) += [sum(hit * w), sum(w)]; then *position += 1, each dropout stream's offset +=
// its units per step, and each running product given (Adam's beta powers) *= its factor.
__global__ void step_end(const double* row_loss, const int* row_hit, const float* weights,
                         int rows, double* step_totals, double* accuracy, int* position,
                         unsigned long long* offsets, const unsigned long long* increments,
                         int streams, double* product_1, double factor_1, double* product_2,
                         double factor_2) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double total = 0.0, hits = 0.0, count = 0.0;
    for (int r = 0; r < rows; ++r) {
        float w = weights ? weights[r] : 1.f;
        total += row_loss[r];
        hits += (double)(row_hit[r] ? w : 0.f);
        count += (double)w;
    }
    if (step_totals) step_totals[position[0]] = total;
    if (accuracy) {
        accuracy[0] += hits;
        accuracy[1] += count;
    }
    position[0] += 1;
    for (int k = 0; k < streams; ++k) offsets[k] += increments[k];
    if (product_1) product_1[0] *= factor_1;
    if (product_2) product_2[0] *= factor_2;
}

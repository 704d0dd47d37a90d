// Optimiser updates in place. Adam: bias-corrected, `step` = lr / (1 - beta1^t) and
// `c2s` = sqrt(1 - beta2^t) computed on the host. SGD: v = momentum v + g; p -= lr v.
// Both add `wd * p` (L2 weight decay) to the gradient first.

__kernel void adam_step(__global float* p, __global const float* g, __global float* m,
                        __global float* v, int n, float step, float beta1, float beta2, float eps,
                        float c2s, float wd) {
    int i = get_global_id(0);
    if (i >= n) {
        return;
    }
    float pi = p[i];
    float gi = g[i] + wd * pi;
    float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step * mi / (sqrt(vi) / c2s + eps);
}

__kernel void sgd_step(__global float* p, __global const float* g, __global float* vel, int n,
                       float lr, float momentum, float wd) {
    int i = get_global_id(0);
    if (i >= n) {
        return;
    }
    float pi = p[i];
    float gi = g[i] + wd * pi;
    float vi = momentum * vel[i] + gi;
    vel[i] = vi;
    p[i] = pi - lr * vi;
}

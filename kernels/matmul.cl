// Batched matrix product of ops/matmul: y[b] = a[b] (m x k) * b[b or shared] (k x n), row-major.
// 16x16 work-groups, each work-item one output element; tiles of A and B staged in local memory.

#define TS 16

__kernel void matmul(__global const float* a, __global const float* b, __global float* y,
                     int m, int k, int n, int b_batched) {
    int col = get_global_id(0);
    int row = get_global_id(1);
    int batch = get_global_id(2);
    int lc = get_local_id(0);
    int lr = get_local_id(1);
    __local float ta[TS][TS];
    __local float tb[TS][TS];
    __global const float* ab = a + (size_t)batch * m * k;
    __global const float* bb = b + (b_batched ? (size_t)batch * k * n : 0);
    float acc = 0.0f;
    for (int t = 0; t < k; t += TS) {
        int ac = t + lc;
        int br = t + lr;
        ta[lr][lc] = (row < m && ac < k) ? ab[(size_t)row * k + ac] : 0.0f;
        tb[lr][lc] = (br < k && col < n) ? bb[(size_t)br * n + col] : 0.0f;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int i = 0; i < TS; ++i) {
            acc += ta[lr][i] * tb[i][lc];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (row < m && col < n) {
        y[(size_t)batch * m * n + (size_t)row * n + col] = acc;
    }
}

using MaeMl.Model;
using static MaeMl.Onnx.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace MaeMl.Onnx;

/// <summary>
/// The ViTDet backbone (<see cref="BackboneAttention.TokenGrid"/>) as ONNX nodes, step for step <see cref="VitEncoder{TOutput}.ForwardGrid"/>
/// and the final norm: patch Conv, tokens as a grid [N, h, w, D] plus the position table without its cls row (computed at export
/// time by <see cref="VitDetOps.GetAbsPos"/>), then per block LayerNormalization, window partition (Pad to a multiple of the window,
/// Reshape, Transpose, Reshape) or the whole grid, fused-qkv attention (MatMul, Softmax) with the decomposed relative position bias
/// (the gathered tables Rh, Rw of the fixed sizes are initializers, <see cref="VitDetOps.GetRelPos"/>; the bias is two broadcast
/// MatMuls of the unscaled queries), window unpartition (Reshape, Transpose, Reshape, Slice off the padding), exact GELU MLP; the
/// final norm and the feature map [N, D, h, w].
/// </summary>
internal static class VitDetOnnx
{
    /// <summary>Adds the backbone on normalised images <paramref name="x"/> [N, C, H, W] to <paramref name="w"/>'s graph (weights named
    /// <c>{prefix}patch_embed...</c>) and returns the feature map [N, D, h, w].</summary>
    public static string FeatureMap(DenseOnnxWriter w, IReadOnlyDictionary<string, Tensor> state, string prefix, string x, MaeConfig e, BackboneAttention a)
    {
        using var scope = NewDisposeScope();
        var g = w.G;
        int p = e.PatchSize, d = e.EmbedDim, heads = e.NumHeads, hd = d / heads, hidden = (int)(d * e.MlpRatio);
        int gh = e.GridHeight, gw = e.GridWidth;   // the fixed input's patch grid
        var eps = (float)e.LayerNormEps;
        string LayerNorm(string v, string name) =>
            g.Node("LayerNormalization", [v, w.Init($"{prefix}{name}.weight"), w.Init($"{prefix}{name}.bias")], name, Attr("axis", -1L), Attr("epsilon", eps));

        x = g.Node("Conv", [x, w.Init($"{prefix}patch_embed.proj.weight"), w.Init($"{prefix}patch_embed.proj.bias")], "patch_embed",
            Ints("kernel_shape", p, p), Ints("strides", p, p));                                          // [N, D, h, w]
        x = g.Node("Transpose", [x], "patch_grid", Ints("perm", 0, 2, 3, 1));                             // [N, h, w, D]
        using (var pos = VitDetOps.GetAbsPos(Weight(state, $"{prefix}pos_embed"), gh, gw))
            x = g.Node("Add", [x, g.Initializer("pos_embed_grid", Floats(pos), 1, gh, gw, d)], "patch_grid_pos");

        var scale = g.Scalar("attn_scale", (float)Math.Pow(hd, -0.5));
        var idx = Enumerable.Range(0, 3).Select(i => g.Int64s($"qkv_index_{i}", [i], scalar: true)).ToArray();
        for (int b = 0; b < e.Depth; b++)
        {
            var pre = $"blocks.{b}";
            var h = LayerNorm(x, $"{pre}.norm1");                                                          // [N, h, w, D]
            bool windowed = a.IsWindowed(b);
            int ws = a.WindowSize, hp = gh, wp = gw, qh = gh, qw = gw;
            string tokens;
            if (windowed)
            {
                hp = (gh + ws - 1) / ws * ws; wp = (gw + ws - 1) / ws * ws; qh = qw = ws;
                if (hp > gh || wp > gw)
                    h = g.Node("Pad", [h, g.Int64s($"{pre}.pads", [0, 0, 0, 0, 0, hp - gh, wp - gw, 0])], $"{pre}.padded");   // [N, Hp, Wp, D]
                h = g.Node("Reshape", [h, g.Int64s($"{pre}.window_split", [-1, hp / ws, ws, wp / ws, ws, d])], $"{pre}.window_split");
                h = g.Node("Transpose", [h], $"{pre}.window_major", Ints("perm", 0, 1, 3, 2, 4, 5));         // [N, nh, nw, ws, ws, D]
                tokens = g.Node("Reshape", [h, g.Int64s($"{pre}.window_tokens", [-1, ws * ws, d])], $"{pre}.windows");   // [N nW, T, D]
            }
            else tokens = g.Node("Reshape", [h, g.Int64s($"{pre}.grid_tokens", [-1, gh * gw, d])], $"{pre}.tokens");      // [N, T, D]

            var o = Attention(w, state, prefix, pre, tokens, d, heads, hd, qh, qw, scale, idx);                 // [B', T, D]
            if (windowed)
            {
                o = g.Node("Reshape", [o, g.Int64s($"{pre}.window_grid", [-1, hp / ws, wp / ws, ws, ws, d])], $"{pre}.window_grid");
                o = g.Node("Transpose", [o], $"{pre}.row_major", Ints("perm", 0, 1, 3, 2, 4, 5));            // [N, nh, ws, nw, ws, D]
                o = g.Node("Reshape", [o, g.Int64s($"{pre}.padded_grid", [-1, hp, wp, d])], $"{pre}.unpartitioned");
                if (hp > gh || wp > gw)
                    o = g.Node("Slice", [o, g.Int64s($"{pre}.crop_start", [0, 0]), g.Int64s($"{pre}.crop_end", [gh, gw]), g.Int64s($"{pre}.crop_axes", [1, 2])], $"{pre}.cropped");
            }
            else o = g.Node("Reshape", [o, g.Int64s($"{pre}.grid_shape", [-1, gh, gw, d])], $"{pre}.attn_grid");
            x = g.Node("Add", [x, o], $"{pre}.residual1");

            h = LayerNorm(x, $"{pre}.norm2");
            h = w.Linear(h, $"{prefix}{pre}.mlp.fc1");
            h = w.Gelu(h, $"{pre}.mlp.gelu");
            h = w.Linear(h, $"{prefix}{pre}.mlp.fc2");
            x = g.Node("Add", [x, h], $"{pre}.residual2");
        }
        x = LayerNorm(x, "norm");
        return g.Node("Transpose", [x], "vit_feature_map", Ints("perm", 0, 3, 1, 2));                      // [N, D, h, w]
    }

    /// <summary>tokens [B', qh*qw, D] -> [B', qh*qw, D]: softmax(q k^T / sqrt(hd) + relative bias) v, then <c>proj</c>.</summary>
    static string Attention(DenseOnnxWriter w, IReadOnlyDictionary<string, Tensor> state, string prefix, string pre, string tokens,
        int d, int heads, int hd, int qh, int qw, string scale, string[] idx)
    {
        var g = w.G;
        int t = qh * qw;
        var h = w.Linear(tokens, $"{prefix}{pre}.attn.qkv");                                               // [B', T, 3D]
        h = g.Node("Reshape", [h, g.Int64s($"{pre}.attn.qkv_shape", [0, 0, 3, heads, hd])], $"{pre}.attn.qkv_split");
        h = g.Node("Transpose", [h], $"{pre}.attn.qkv_heads", Ints("perm", 2, 0, 3, 1, 4));                // [3, B', H, T, hd]
        var q = g.Node("Gather", [h, idx[0]], $"{pre}.attn.q", Attr("axis", 0L));
        var k = g.Node("Gather", [h, idx[1]], $"{pre}.attn.k", Attr("axis", 0L));
        var v = g.Node("Gather", [h, idx[2]], $"{pre}.attn.v", Attr("axis", 0L));
        var kt = g.Node("Transpose", [k], $"{pre}.attn.k_t", Ints("perm", 0, 1, 3, 2));
        var scores = g.Node("MatMul", [g.Node("Mul", [q, scale], $"{pre}.attn.q_scaled"), kt], $"{pre}.attn.scores");   // [B', H, T, T]
        if (state.ContainsKey($"{prefix}{pre}.attn.rel_pos_h"))
        {
            // bias[b, i, j, k, l] = q[b, i, j] . Rh[i, k] + q[b, i, j] . Rw[j, l] (unscaled queries, as detectron2)
            string Table(string axis, int size)
            {
                using var r = VitDetOps.GetRelPos(size, size, Weight(state, $"{prefix}{pre}.attn.rel_pos_{axis}"));   // [q, k, hd]
                using var rt = r.permute(0, 2, 1).contiguous();                                                    // [q, hd, k]
                return g.Initializer($"{pre}.attn.R{axis}_t", Floats(rt), size, hd, size);
            }
            var rq = g.Node("Reshape", [q, g.Int64s($"{pre}.attn.q_grid", [-1, qh, qw, hd])], $"{pre}.attn.q_grid");     // [B' H, qh, qw, hd]
            var relH = g.Node("MatMul", [rq, Table("h", qh)], $"{pre}.attn.rel_h");                                      // [B' H, qh, qw, kh]
            var rqT = g.Node("Transpose", [rq], $"{pre}.attn.q_grid_t", Ints("perm", 0, 2, 1, 3));                      // [B' H, qw, qh, hd]
            var relW = g.Node("MatMul", [rqT, Table("w", qw)], $"{pre}.attn.rel_w_t");                                   // [B' H, qw, qh, kw]
            relW = g.Node("Transpose", [relW], $"{pre}.attn.rel_w", Ints("perm", 0, 2, 1, 3));                          // [B' H, qh, qw, kw]
            var bias = g.Node("Add", [g.Node("Unsqueeze", [relH, g.Int64s($"{pre}.attn.axis_4", [4])], $"{pre}.attn.rel_h_5d"),
                g.Node("Unsqueeze", [relW, g.Int64s($"{pre}.attn.axis_3", [3])], $"{pre}.attn.rel_w_5d")], $"{pre}.attn.rel_bias_5d");   // [B' H, qh, qw, kh, kw]
            bias = g.Node("Reshape", [bias, g.Int64s($"{pre}.attn.bias_shape", [-1, heads, t, t])], $"{pre}.attn.rel_bias");
            scores = g.Node("Add", [scores, bias], $"{pre}.attn.scores_rel");
        }
        var probs = g.Node("Softmax", [scores], $"{pre}.attn.probs", Attr("axis", -1L));
        var o = g.Node("MatMul", [probs, v], $"{pre}.attn.context");                                         // [B', H, T, hd]
        o = g.Node("Transpose", [o], $"{pre}.attn.context_t", Ints("perm", 0, 2, 1, 3));                    // [B', T, H, hd]
        o = g.Node("Reshape", [o, g.Int64s($"{pre}.attn.merge_shape", [0, 0, d])], $"{pre}.attn.merged");
        return w.Linear(o, $"{prefix}{pre}.attn.proj");
    }

    static Tensor Weight(IReadOnlyDictionary<string, Tensor> state, string name) =>
        state.TryGetValue(name, out var t) ? t.detach().to(ScalarType.Float32, CPU) : throw new ArgumentException($"The weights have no '{name}'");

    static float[] Floats(Tensor t) => t.contiguous().data<float>().ToArray();
}

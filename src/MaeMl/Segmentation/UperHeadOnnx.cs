using MaeMl.Onnx;
using static MaeMl.Onnx.OnnxGraphBuilder;

namespace MaeMl.Segmentation;

/// <summary>
/// Writes <see cref="UperHead"/> into a dense graph by its state-dict names: each <see cref="ConvModule"/> as Conv + LayerNorm2d +
/// Relu, the PPM's adaptive average pooling as two MatMuls with constant averaging matrices
/// (<see cref="DenseOnnxWriter.AdaptivePoolMatrix"/>, PyTorch's exact windows for any size), every bilinear resize by the target
/// map's own height and width (<see cref="DenseOnnxWriter.ResizeTo"/>). Dropout is the identity at inference and is left out.
/// </summary>
internal static class UperHeadOnnx
{
    /// <summary>The head under <paramref name="prefix"/> on <paramref name="levels"/> [N, C, h_i, w_i] of <paramref name="sizes"/>
    /// (finest first); returns the logits [N, K, h_0, w_0].</summary>
    public static string Write(DenseOnnxWriter w, string[] levels, (int Height, int Width)[] sizes, string prefix = "head.")
    {
        var g = w.G;
        string Module(string x, string name, int padding) =>
            w.Relu(w.LayerNorm2d(w.Conv(x, $"{name}.conv", padding), $"{name}.ln"), $"{name}.activate");
        string Concat(IEnumerable<string> xs, string name) => g.Node("Concat", xs.ToArray(), name, Attr("axis", 1L));
        int n = levels.Length;

        var laterals = new string[n];
        for (int i = 0; i < n - 1; i++) laterals[i] = Module(levels[i], $"{prefix}lateral_convs.{i}", 0);
        var (th, tw) = sizes[n - 1];
        var psp = new List<string> { levels[n - 1] };
        for (int j = 0; j < UperHead.PoolScales.Length; j++)
        {
            var pooled = w.AdaptiveAvgPool2d(levels[n - 1], $"{prefix}psp_modules.{j}.0", th, tw, UperHead.PoolScales[j]);   // [N, C, b, b]
            psp.Add(w.ResizeTo(Module(pooled, $"{prefix}psp_modules.{j}.1", 0), $"{prefix}psp_modules.{j}.up", th, tw));     // [N, C, h, w]
        }
        laterals[n - 1] = Module(Concat(psp, $"{prefix}psp_cat"), $"{prefix}bottleneck", 1);
        for (int i = n - 1; i > 0; i--)
            laterals[i - 1] = g.Node("Add", [laterals[i - 1], w.ResizeTo(laterals[i], $"{prefix}top_down_{i}", sizes[i - 1].Height, sizes[i - 1].Width)], $"{prefix}lateral_sum_{i - 1}");

        var outs = new string[n];
        for (int i = 0; i < n - 1; i++) outs[i] = Module(laterals[i], $"{prefix}fpn_convs.{i}", 1);
        outs[n - 1] = laterals[n - 1];
        for (int i = n - 1; i > 0; i--) outs[i] = w.ResizeTo(outs[i], $"{prefix}fpn_up_{i}", sizes[0].Height, sizes[0].Width);
        var x = Module(Concat(outs, $"{prefix}fpn_cat"), $"{prefix}fpn_bottleneck", 1);
        return w.Conv(x, $"{prefix}conv_seg");
    }
}

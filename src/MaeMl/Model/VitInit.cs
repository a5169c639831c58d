using TorchSharp;
using TorchSharp.Modules;

namespace MaeMl.Model;

/// <summary>Construction and initialisation pieces the ViT-based models share (MAE, classifier, dense backbone).</summary>
internal static class VitInit
{
    /// <summary>The encoder's <c>blocks</c>, with stochastic depth rising linearly from 0 to <see cref="MaeConfig.DropPath"/> (timm's <c>dpr</c>);
    /// with <paramref name="attention"/>, ViTDet's window blocks and relative position tables (sized by the window, or by the patch
    /// grid for global blocks, as detectron2's <c>input_size</c>).</summary>
    public static ModuleList<Block> EncoderBlocks(MaeConfig c, BackboneAttention? attention = null)
    {
        var a = attention ?? BackboneAttention.Global;
        (int, int) RelPosSize(int i) => !a.RelativePositions ? default : a.IsWindowed(i) ? (a.WindowSize, a.WindowSize) : (c.GridHeight, c.GridWidth);
        return torch.nn.ModuleList(Enumerable.Range(0, c.Depth)
            .Select(i => new Block(c.EmbedDim, c.NumHeads, c.MlpRatio, c.LayerNormEps, c.Depth == 1 ? c.DropPath : c.DropPath * i / (c.Depth - 1),
                a.IsWindowed(i) ? a.WindowSize : 0, RelPosSize(i)))
            .ToArray());
    }

    /// <summary>The official <c>_init_weights</c>: xavier-uniform weights and zero biases for every Linear, 1/0 for every LayerNorm.</summary>
    public static void XavierLinearsUnitNorms(torch.nn.Module module)
    {
        using var _ = torch.no_grad();
        foreach (var m in module.modules())
        {
            if (m is Linear linear)
            {
                torch.nn.init.xavier_uniform_(linear.weight!);
                if (linear.bias is not null) torch.nn.init.zeros_(linear.bias);
            }
            else if (m is LayerNorm ln)
            {
                torch.nn.init.ones_(ln.weight!);
                torch.nn.init.zeros_(ln.bias!);
            }
        }
    }
}

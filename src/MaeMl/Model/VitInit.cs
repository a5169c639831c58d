using TorchSharp;
using TorchSharp.Modules;

namespace MaeMl.Model;

/// <summary>Construction and initialisation pieces the ViT-based models share (MAE, classifier, dense backbone).</summary>
internal static class VitInit
{
    /// <summary>The encoder's <c>blocks</c>, with stochastic depth rising linearly from 0 to <see cref="MaeConfig.DropPath"/> (timm's <c>dpr</c>).</summary>
    public static ModuleList<Block> EncoderBlocks(MaeConfig c) =>
        torch.nn.ModuleList(Enumerable.Range(0, c.Depth)
            .Select(i => new Block(c.EmbedDim, c.NumHeads, c.MlpRatio, c.LayerNormEps, c.Depth == 1 ? c.DropPath : c.DropPath * i / (c.Depth - 1)))
            .ToArray());

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

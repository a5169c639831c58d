using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>timm's <c>PatchEmbed</c>: a p x p stride-p convolution, images [N, C, H, W] to tokens [N, L, D] (token l = row*(W/p) + col).</summary>
public sealed class PatchEmbed : nn.Module<Tensor, Tensor>
{
    readonly Conv2d proj;
    readonly int imageSize;

    public PatchEmbed(int imageSize, int patchSize, int inChans, int embedDim) : base(nameof(PatchEmbed))
    {
        this.imageSize = imageSize;
        proj = nn.Conv2d(inChans, embedDim, kernel_size: patchSize, stride: patchSize);
        RegisterComponents();
    }

    public Conv2d Proj => proj;

    public override Tensor forward(Tensor x)
    {
        if (x.ndim != 4 || x.shape[2] != imageSize || x.shape[3] != imageSize)
            throw new ArgumentException($"Expected images [N, {proj.in_channels}, {imageSize}, {imageSize}], got [{string.Join(", ", x.shape)}]");
        using var y = proj.forward(x);           // [N, D, h, w]
        using var flat = y.flatten(2);           // [N, D, L]
        return flat.transpose(1, 2);             // [N, L, D]
    }
}

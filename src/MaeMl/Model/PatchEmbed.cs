using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>timm's <c>PatchEmbed</c>: a p x p stride-p convolution, images [N, C, H, W] to tokens [N, L, D] (token l = row*(W/p) + col).</summary>
public sealed class PatchEmbed : nn.Module<Tensor, Tensor>
{
    readonly Conv2d proj;
    readonly int height, width;

    /// <summary>A projection of square <paramref name="imageSize"/> images with <paramref name="inChans"/> channels in
    /// <paramref name="patchSize"/>-pixel patches to <paramref name="embedDim"/>-wide tokens.</summary>
    public PatchEmbed(int imageSize, int patchSize, int inChans, int embedDim) : this(imageSize, imageSize, patchSize, inChans, embedDim) { }

    /// <summary>The same for <paramref name="imageHeight"/> x <paramref name="imageWidth"/> images (timm's <c>img_size=(H, W)</c>).</summary>
    public PatchEmbed(int imageHeight, int imageWidth, int patchSize, int inChans, int embedDim) : base(nameof(PatchEmbed))
    {
        (height, width) = (imageHeight, imageWidth);
        proj = nn.Conv2d(inChans, embedDim, kernel_size: patchSize, stride: patchSize);
        RegisterComponents();
    }

    /// <summary>The convolution (<c>patch_embed.proj</c>): weight [D, C, p, p], bias [D].</summary>
    public Conv2d Proj => proj;

    /// <summary>x [N, C, H, W] -> tokens [N, L, D] with L = (H/p)(W/p); throws <see cref="ArgumentException"/> for another image size.</summary>
    public override Tensor forward(Tensor x)
    {
        if (x.ndim != 4 || x.shape[2] != height || x.shape[3] != width)
            throw new ArgumentException($"Expected images [N, {proj.in_channels}, {height}, {width}], got [{string.Join(", ", x.shape)}]");
        using var y = proj.forward(x);           // [N, D, h, w]
        using var flat = y.flatten(2);           // [N, D, L]
        return flat.transpose(1, 2);             // [N, L, D]
    }
}

using MaeMl.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Segmentation;

/// <summary>
/// Semantic segmentation on a MAE ViT: <c>backbone</c> (a feature-map <see cref="VisionTransformer"/> for the linear head, a
/// <see cref="SimpleFeaturePyramid"/> whose <c>net</c> is the ViT for the pyramid and UperNet heads) and <c>head</c>; the logits are
/// bilinearly upsampled to the input size. imgs [N, 3, H, W] (ImageNet-normalised; H x W the encoder's <see cref="MaeConfig.InputSize"/>)
/// -> logits [N, K, H, W].
/// </summary>
public sealed class SegmentationModel : nn.Module<Tensor, Tensor>
{
    readonly nn.Module backbone;
    readonly nn.Module head;   // Sequential (linear, pyramid) or UperHead

    /// <summary>The architecture this model was built with (validated).</summary>
    public SegmentationConfig Config { get; }

    /// <summary>The ViT inside the backbone (load pretrained weights into it).</summary>
    public VisionTransformer Vit { get; }

    /// <summary>A model of <paramref name="config"/> with a freshly initialised ViT (load pretrained weights with
    /// <see cref="VisionTransformer.LoadEncoder"/> on <see cref="Vit"/>) and head (TorchSharp's default init).</summary>
    public SegmentationModel(SegmentationConfig config) : base(nameof(SegmentationModel))
    {
        Config = config.Validate();
        Vit = new VisionTransformer(VitClassifierConfig.Backbone(config.Encoder, config.Attention));
        int k = config.NumClasses;
        if (config.Head == SegmentationHeadKind.Linear)
        {
            backbone = Vit;
            head = nn.Sequential(("0", nn.Conv2d(Vit.Channels, k, 1)));
        }
        else if (config.Head == SegmentationHeadKind.UperNet)
        {
            backbone = new SimpleFeaturePyramid(Vit, config.PyramidChannels, config.Scales);
            head = new UperHead(config.PyramidChannels, config.Scales.Length, k);
        }
        else
        {
            backbone = new SimpleFeaturePyramid(Vit, config.PyramidChannels, config.Scales);
            int c = config.PyramidChannels;
            head = nn.Sequential(("0", nn.Conv2d(c, c, 3, padding: 1, bias: false)), ("1", new LayerNorm2d(c)), ("2", nn.GELU()), ("3", nn.Conv2d(c, k, 1)));
        }
        RegisterComponents();
    }

    /// <summary>Logits at the resolution of the head, before upsampling: [N, K, h, w].</summary>
    public Tensor ForwardLowRes(Tensor imgs)
    {
        using var scope = NewDisposeScope();
        Tensor x;
        if (backbone is VisionTransformer vit) x = vit.forward(imgs);
        else
        {
            var levels = ((SimpleFeaturePyramid)backbone).forward(imgs);
            if (head is UperHead uper) return uper.forward(levels).MoveToOuterDisposeScope();
            var size = new[] { levels[0].shape[2], levels[0].shape[3] };
            x = levels[0];
            for (int i = 1; i < levels.Length; i++)
                x = x + nn.functional.interpolate(levels[i], size, mode: InterpolationMode.Bilinear, align_corners: false);
        }
        return ((Sequential)head).forward(x).MoveToOuterDisposeScope();
    }

    /// <summary>imgs [N, 3, H, W] -> logits [N, K, H, W].</summary>
    public override Tensor forward(Tensor imgs)
    {
        using var low = ForwardLowRes(imgs);
        return nn.functional.interpolate(low, new[] { imgs.shape[2], imgs.shape[3] }, mode: InterpolationMode.Bilinear, align_corners: false);
    }

    /// <summary>Pixel-wise cross-entropy of logits [N, K, H, W] against labels [N, H, W] (int64), pixels equal to <paramref name="ignoreIndex"/> left out.</summary>
    public static Tensor Loss(Tensor logits, Tensor labels, int ignoreIndex) =>
        nn.functional.cross_entropy(logits, labels, ignore_index: ignoreIndex);
}

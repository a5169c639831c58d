using MaeMl.Model;

namespace MaeMl.Segmentation;

/// <summary>Which decoder sits on the ViT.</summary>
public enum SegmentationHeadKind
{
    /// <summary>Baseline: a 1x1 conv (linear per patch) on the last ViT map, bilinearly upsampled.</summary>
    Linear,
    /// <summary>FPN-lite: the simple feature pyramid's levels upsampled to the finest one and summed, a 3x3 conv + LayerNorm2d + GELU, a 1x1 classifier.</summary>
    Pyramid,
    /// <summary>UperNet (mmseg's <c>UPerHead</c>, the MAE paper's ADE20K head) on the simple feature pyramid: a pyramid pooling module
    /// (1, 2, 3, 6 bins) on the coarsest level, lateral 1x1 convs, a top-down pathway, 3x3 FPN convs, all levels fused at the finest,
    /// Dropout2d 0.1 and a 1x1 classifier; <see cref="SegmentationConfig.PyramidChannels"/> wide, LayerNorm2d + ReLU after every conv.</summary>
    UperNet,
}

/// <summary>Architecture of a <see cref="SegmentationModel"/>.</summary>
/// <param name="Encoder">The ViT; its <see cref="MaeConfig.InputSize"/> (W x H, square unless <see cref="MaeConfig.ImageHeight"/> is set) is the input size.</param>
/// <param name="NumClasses">Output classes (label ids 0..NumClasses-1).</param>
/// <param name="Head">Decoder kind.</param>
/// <param name="PyramidChannels">Channels of the pyramid levels and of the pyramid or UperNet head (mmseg's <c>channels</c>, 512 at ViT-B scale).</param>
/// <param name="PyramidScales">Pyramid scales relative to the patch grid (ViTDet: 4, 2, 1, 0.5).</param>
public sealed record SegmentationConfig(MaeConfig Encoder, int NumClasses, SegmentationHeadKind Head = SegmentationHeadKind.Pyramid,
    int PyramidChannels = 64, double[]? PyramidScales = null)
{
    /// <summary>The scales in use.</summary>
    public double[] Scales => PyramidScales ?? [4.0, 2.0, 1.0, 0.5];

    /// <summary>How the ViT's blocks attend: null (files written before it was recorded) or <see cref="BackboneAttention.Global"/> for
    /// global attention, or ViTDet's windows and relative positions (<see cref="BackboneAttention.VitDet"/>).</summary>
    public BackboneAttention? Attention { get; init; }

    /// <summary>Validates the encoder, at least 2 classes, positive <see cref="PyramidChannels"/> and, for <see cref="SegmentationHeadKind.UperNet"/>,
    /// scales finest first, and returns this configuration; throws <see cref="ArgumentException"/> naming the bad setting.</summary>
    public SegmentationConfig Validate()
    {
        Encoder.Validate();
        Attention?.Validate(Encoder.Depth);
        if (NumClasses < 2) throw new ArgumentException($"A segmentation model needs at least 2 classes, got {NumClasses}");
        if (PyramidChannels < 1) throw new ArgumentException($"PyramidChannels must be positive, got {PyramidChannels}");
        if (Head == SegmentationHeadKind.UperNet && (Scales.Length == 0 || Scales.Zip(Scales.Skip(1)).Any(p => p.First <= p.Second)))
            throw new ArgumentException($"The UperNet head needs pyramid scales finest first (decreasing, e.g. 4,2,1,0.5), got {string.Join(",", Scales)}");
        return this;
    }
}

using MaeMl.Model;
using MaeMl.Segmentation;
using MaeMl.Training;
using Microsoft.Extensions.Logging;
using Microsoft.ML;

namespace MaeMl.MLNet;

/// <summary>Settings of <see cref="MaeSemanticSegmentationTrainer"/>
/// (<see cref="MaeSemanticSegmentationCatalog.MaeSemanticSegmentation(MulticlassClassificationCatalog.MulticlassClassificationTrainers, MaeSemanticSegmentationOptions)"/>).</summary>
public sealed record MaeSemanticSegmentationOptions : MaeDenseTrainerOptions
{
    /// <summary>Mask column (<see cref="Microsoft.ML.Data.MLImage"/>, e.g. <c>LoadImages</c> of single-channel PNGs): pixel value = class id,
    /// <see cref="IgnoreValue"/> = not labelled. Each mask is stretched to the model size with the nearest pixel, as the image is.</summary>
    public string MaskColumnName { get; init; } = "Mask";
    /// <summary>Output: variable-size vector of <see cref="uint"/> class ids, one per pixel of the input image, row-major (height x width
    /// of the image in the image column).</summary>
    public string PredictedMaskColumnName { get; init; } = "PredictedMask";
    /// <summary>Output (null, the default: none): the same pixels as a variable-size vector of keys whose key values are
    /// <see cref="ClassNames"/> (class id i is key i + 1).</summary>
    public string? PredictedLabelColumnName { get; init; }

    /// <summary>Mask value that means "not labelled" (left out of the loss). Default 255; COCO128's panoptic masks use 0.</summary>
    public int IgnoreValue { get; init; } = 255;
    /// <summary>Output classes K (class ids 0..K-1; larger mask values are ignored). Null: the number of <see cref="ClassNames"/>,
    /// or else one more than the largest class id in the training masks.</summary>
    public int? NumClasses { get; init; }
    /// <summary>Names of the classes, in class-id order (written into the ONNX model; the key values of <see cref="PredictedLabelColumnName"/>).
    /// Null: "0", "1", ...</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>Decoder on the ViT: <see cref="SegmentationHeadKind.Pyramid"/> (default), <see cref="SegmentationHeadKind.UperNet"/> (pyramid
    /// pooling + FPN, the MAE paper's head; <see cref="MaeDenseTrainerOptions.PyramidChannels"/> is its width) or the per-patch
    /// <see cref="SegmentationHeadKind.Linear"/> baseline.</summary>
    public SegmentationHeadKind Head { get; init; } = SegmentationHeadKind.Pyramid;
}

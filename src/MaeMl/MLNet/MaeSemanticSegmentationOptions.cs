using MaeMl.Model;
using MaeMl.Segmentation;
using MaeMl.Training;
using Microsoft.Extensions.Logging;
using Microsoft.ML;

namespace MaeMl.MLNet;

/// <summary>Settings of <see cref="MaeSemanticSegmentationTrainer"/>
/// (<see cref="MaeSemanticSegmentationCatalog.MaeSemanticSegmentation(MulticlassClassificationCatalog.MulticlassClassificationTrainers, MaeSemanticSegmentationOptions)"/>).</summary>
public sealed record MaeSemanticSegmentationOptions
{
    /// <summary>Image column (<see cref="Microsoft.ML.Data.MLImage"/>, e.g. from <c>LoadImages</c>).</summary>
    public string ImageColumnName { get; init; } = "Image";
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

    /// <summary>ViT architecture; its <see cref="MaeConfig.ImageSize"/> is the model's input size (images and masks are stretched to it).</summary>
    public MaeConfig Encoder { get; init; } = MaePresets.MaeVitTinyPatch4Img32Dec128d2b with { ImageSize = 64 };
    /// <summary>MAE / encoder file whose encoder initialises the ViT, or the name of a shipped model (<c>cifar10-vit-tiny</c>); null:
    /// random initialisation.</summary>
    public string? PretrainedEncoderFile { get; init; }
    /// <summary>Decoder on the ViT: <see cref="SegmentationHeadKind.Pyramid"/> (default) or the per-patch <see cref="SegmentationHeadKind.Linear"/> baseline.</summary>
    public SegmentationHeadKind Head { get; init; } = SegmentationHeadKind.Pyramid;
    /// <summary>Channels of the pyramid and of the pyramid head.</summary>
    public int PyramidChannels { get; init; } = 64;
    /// <summary>Pyramid scales relative to the patch grid (null: ViTDet's 4, 2, 1, 0.5).</summary>
    public double[]? PyramidScales { get; init; }
    /// <summary>Epochs, batch size, learning rates, flips and time limit of training (its <see cref="DenseTrainingOptions.Seed"/> is
    /// replaced by <see cref="Seed"/>).</summary>
    public DenseTrainingOptions Training { get; init; } = new();
    /// <summary>Seed of initialisation, data order and flips. Null (default): drawn from the <see cref="MLContext"/> the trainer was
    /// created from, so <c>new MLContext(seed: 1)</c> makes the run reproducible.</summary>
    public int? Seed { get; init; }
    /// <summary>Where the trained model's ONNX file is written (null: nowhere, it is kept in memory). The fitted ML.NET model embeds it;
    /// <c>ApplyMaeSegmenter</c> builds the same chain from the file.</summary>
    public string? OnnxModelFile { get; init; }
    /// <summary>CUDA device for scoring with ONNX Runtime (needs the <c>Microsoft.ML.OnnxRuntime.Gpu</c> native package), or null for
    /// the CPU. Training runs in TorchSharp on the CPU.</summary>
    public int? GpuDeviceId { get; init; }
    /// <summary>Score on the CPU when the GPU cannot be used (also when the CPU-only ONNX Runtime package is referenced). Default true.</summary>
    public bool FallbackToCpu { get; init; } = true;
    /// <summary>Progress lines also go here (they always go to <c>MLContext.Log</c>). Null: only the context's log.</summary>
    public ILogger? Logger { get; init; }
    /// <summary>Stops training early (as <c>MLContext.CancelExecution()</c> does): <c>Fit</c> throws <see cref="OperationCanceledException"/>.</summary>
    public CancellationToken CancellationToken { get; init; }
}

using MaeMl.Training;
using MaeMl.Model;
using Microsoft.Extensions.Logging;
using Microsoft.ML;

namespace MaeMl.MLNet;

/// <summary>Settings of <see cref="MaeObjectDetectionTrainer"/>
/// (<see cref="MaeObjectDetectionCatalog.MaeObjectDetection(MulticlassClassificationCatalog.MulticlassClassificationTrainers, MaeObjectDetectionOptions)"/>). Column names default to those of ML.NET's own object-detection trainer.</summary>
public sealed record MaeObjectDetectionOptions
{
    /// <summary>Vector of keys: the class of each box.</summary>
    public string LabelColumnName { get; init; } = "Label";
    /// <summary>Vector of floats, four per box: x0, y0, x1, y1 in pixels of the image.</summary>
    public string BoundingBoxColumnName { get; init; } = "BoundingBoxes";
    /// <summary>Image column (<see cref="Microsoft.ML.Data.MLImage"/>).</summary>
    public string ImageColumnName { get; init; } = "Image";
    /// <summary>Output: variable-size vector of keys (same key type as the label), one per predicted box.</summary>
    public string PredictedLabelColumnName { get; init; } = "PredictedLabel";
    /// <summary>Output: variable-size vector of floats, one per predicted box, best first.</summary>
    public string ScoreColumnName { get; init; } = "Score";
    /// <summary>Output: variable-size vector of floats, four per predicted box: x0, y0, x1, y1 in pixels of the original image.</summary>
    public string PredictedBoundingBoxColumnName { get; init; } = "PredictedBoundingBoxes";

    /// <summary>ViT architecture; its <see cref="MaeConfig.ImageSize"/> is the model's input size.</summary>
    public MaeConfig Encoder { get; init; } = MaePresets.MaeVitTinyPatch4Img32Dec128d2b with { ImageSize = 64 };
    /// <summary>MAE / encoder file whose encoder initialises the ViT, or the name of a shipped model (<c>cifar10-vit-tiny</c>); null: random initialisation.</summary>
    public string? PretrainedEncoderFile { get; init; }
    public int PyramidChannels { get; init; } = 64;
    public double[]? PyramidScales { get; init; }
    public int HeadConvs { get; init; } = 2;
    /// <summary>Only (location, class) scores above this become detections (in [0, 1)).</summary>
    public float ScoreThreshold { get; init; } = 0.05f;
    /// <summary>IoU above which non-maximum suppression drops the lower-scored box of the same class.</summary>
    public float NmsIoU { get; init; } = 0.6f;
    /// <summary>Detections returned per image at most, all classes together (the best by score after NMS).</summary>
    public int MaxDetections { get; init; } = 100;
    /// <summary>Epochs, batch size, learning rates, flips and time limit of training (its <see cref="DenseTrainingOptions.Seed"/> is
    /// replaced by <see cref="Seed"/>).</summary>
    public DenseTrainingOptions Training { get; init; } = new();
    /// <summary>Seed of initialisation, data order and flips. Null (default): drawn from the <see cref="MLContext"/> the trainer was
    /// created from, so <c>new MLContext(seed: 1)</c> makes the run reproducible.</summary>
    public int? Seed { get; init; }
    /// <summary>Where the trained model's ONNX file is written (null: nowhere, it is kept in memory). The fitted ML.NET model embeds it;
    /// <see cref="MaeDetectorCatalog.ApplyMaeDetector(TransformsCatalog, string, IReadOnlyList{string}?, string, string, string, string, int?, bool)"/> builds the same chain from the file.</summary>
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
    /// <summary>Receives progress lines (superseded by <see cref="Logger"/> and <c>MLContext.Log</c>; kept for one release).</summary>
    [Obsolete("Use Logger (Microsoft.Extensions.Logging) or MLContext.Log")]
    public Action<string>? Log { get; init; }
}

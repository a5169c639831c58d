using MaeMl.Training;
using MaeMl.Model;
using Microsoft.Extensions.Logging;
using Microsoft.ML;

namespace MaeMl.MLNet;

/// <summary>Settings of <see cref="MaeObjectDetectionTrainer"/>
/// (<see cref="MaeObjectDetectionCatalog.MaeObjectDetection(MulticlassClassificationCatalog.MulticlassClassificationTrainers, MaeObjectDetectionOptions)"/>). Column names default to those of ML.NET's own object-detection trainer.</summary>
public sealed record MaeObjectDetectionOptions : MaeDenseTrainerOptions
{
    /// <summary>Vector of keys: the class of each box.</summary>
    public string LabelColumnName { get; init; } = "Label";
    /// <summary>Vector of floats, four per box: x0, y0, x1, y1 in pixels of the image.</summary>
    public string BoundingBoxColumnName { get; init; } = "BoundingBoxes";
    /// <summary>Output: variable-size vector of keys (same key type as the label), one per predicted box.</summary>
    public string PredictedLabelColumnName { get; init; } = "PredictedLabel";
    /// <summary>Output: variable-size vector of floats, one per predicted box, best first.</summary>
    public string ScoreColumnName { get; init; } = "Score";
    /// <summary>Output: variable-size vector of floats, four per predicted box: x0, y0, x1, y1 in pixels of the original image.</summary>
    public string PredictedBoundingBoxColumnName { get; init; } = "PredictedBoundingBoxes";

    /// <summary>Conv layers per FCOS tower (FCOS: 4).</summary>
    public int HeadConvs { get; init; } = 2;
    /// <summary>Only (location, class) scores above this become detections (in [0, 1)).</summary>
    public float ScoreThreshold { get; init; } = 0.05f;
    /// <summary>IoU above which non-maximum suppression drops the lower-scored box of the same class.</summary>
    public float NmsIoU { get; init; } = 0.6f;
    /// <summary>Detections returned per image at most, all classes together (the best by score after NMS).</summary>
    public int MaxDetections { get; init; } = 100;
    /// <summary>Receives progress lines (superseded by <see cref="MaeDenseTrainerOptions.Logger"/> and <c>MLContext.Log</c>; kept for one release).</summary>
    [Obsolete("Use Logger (Microsoft.Extensions.Logging) or MLContext.Log")]
    public Action<string>? Log { get; init; }
}

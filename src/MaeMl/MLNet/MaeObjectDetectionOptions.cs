using MaeMl.Training;
using MaeMl.Model;

namespace MaeMl.MLNet;

/// <summary>Settings of <see cref="MaeObjectDetectionTrainer"/>. Column names default to those of ML.NET's own object-detection trainer.</summary>
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
    /// <summary>MAE / encoder file whose encoder initialises the ViT (null: random initialisation).</summary>
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
    public DenseTrainingOptions Training { get; init; } = new();
    /// <summary>Where the trained model's ONNX file is written (null: a temporary file). The fitted ML.NET model embeds it.</summary>
    public string? OnnxModelFile { get; init; }
    /// <summary>Progress lines of training, or null.</summary>
    public Action<string>? Log { get; init; }
}

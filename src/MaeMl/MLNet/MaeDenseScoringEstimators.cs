using MaeMl.Detection;
using MaeMl.Model;
using MaeMl.Segmentation;
using Microsoft.Extensions.Logging;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace MaeMl.MLNet;

/// <summary>
/// Applies an exported MaeMl detector (<see cref="DetectionOnnxExporter"/>, <c>maeml export-onnx --weights det.model</c>, or the
/// <see cref="MaeDenseTrainerOptions.OnnxModelFile"/> of a trained one) to an image column without training: the chain
/// <see cref="MaeObjectDetectionTrainer.Fit"/> returns (ML.NET's own transformers plus the <c>MaeMl.ImageSize</c> mapping), with ML.NET's
/// object-detection columns <c>PredictedLabel</c> (variable-size vector of keys named by the classes), <c>Score</c> (best first) and
/// <c>PredictedBoundingBoxes</c> (x0 y0 x1 y1 per box, pixels of the original image). The input size is read from the model
/// (<c>maeml.image_size</c>), the class names from the caller or the model (<c>maeml.class_names</c>), else "0", "1", ...
/// Built by <see cref="MaeDetectorCatalog.ApplyMaeDetector"/>.
/// </summary>
public sealed class MaeDetectorScoringEstimator : IEstimator<ITransformer>
{
    readonly ServedDenseModel model;
    readonly DetectorColumns columns;

    internal MaeDetectorScoringEstimator(MLNetHost host, string modelFile, IReadOnlyList<string>? classNames, DetectorColumns columns, int? gpuDeviceId, bool fallbackToCpu)
    {
        var file = DenseScoring.ReadOnnx(modelFile, "object_detection");
        foreach (var input in new[] { DetectionOnnxNames.Pixels, DetectionOnnxNames.ImageSize })
            if (!file.Inputs.Contains(input)) throw new InvalidDataException($"'{modelFile}' has no input '{input}': not a detector exported by MaeMl");
        foreach (var output in new[] { DetectionOnnxNames.Boxes, DetectionOnnxNames.Scores, DetectionOnnxNames.Labels })
            if (!file.Outputs.Contains(output)) throw new InvalidDataException($"'{modelFile}' has no output '{output}': not a detector exported by MaeMl");
        model = new ServedDenseModel(host, file, modelFile, classNames, gpuDeviceId, fallbackToCpu);
        this.columns = columns;
    }

    /// <summary>The model's input size S (images are stretched to S x S).</summary>
    public int ImageSize => model.ImageSize.Width;

    /// <summary>The class names the predicted keys carry, in class-index order.</summary>
    public IReadOnlyList<string> ClassNames => model.ClassNames;

    /// <summary>The fitted chain (nothing is learned: <paramref name="input"/> only gives the schema).</summary>
    public ITransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ServedDenseModel.CheckImage(input.Schema, columns.Image);
        return DenseScoring.FitDetector(model.Ml, input, model.Onnx, ClassNames, ImageSize, columns, model.Device, model.FallbackToCpu);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        ServedDenseModel.CheckImage(inputSchema, columns.Image);
        return DenseScoring.DetectorOutputSchema(model.Ml, inputSchema, ImageSize, columns, ClassNames);
    }
}

/// <summary>
/// Applies an exported MaeMl segmenter to an image column without training: the chain <see cref="MaeSemanticSegmentationTrainer.Fit"/>
/// returns, whose output is a variable-size vector of <see cref="uint"/> class ids at the input image's size (height x width, row-major)
/// and optionally the same as keys named by the classes. The model must have been exported with
/// <see cref="SegmentationOnnxOptions.ImageSizeOutput"/> (<c>maeml export-onnx --weights seg.model</c> does); its input size is read from
/// the model (<c>maeml.image_size</c>, and <c>maeml.image_height</c> for a non-square one), the class names from the caller or the model
/// (<c>maeml.class_names</c>), else "0", "1", ... Built by <see cref="MaeSegmenterCatalog.ApplyMaeSegmenter"/>.
/// </summary>
public sealed class MaeSegmenterScoringEstimator : IEstimator<ITransformer>
{
    readonly ServedDenseModel model;
    readonly SegmenterColumns columns;

    internal MaeSegmenterScoringEstimator(MLNetHost host, string modelFile, IReadOnlyList<string>? classNames, SegmenterColumns columns, int? gpuDeviceId, bool fallbackToCpu)
    {
        var file = DenseScoring.ReadOnnx(modelFile, "semantic_segmentation");
        if (!file.Inputs.Contains(SegmentationOnnxNames.ImageSize) || !file.Outputs.Contains(SegmentationOnnxNames.ImageClassMap))
            throw new InvalidDataException($"'{modelFile}' has no class map at the image's size ({SegmentationOnnxNames.ImageSize} -> {SegmentationOnnxNames.ImageClassMap}): " +
                                           "export it with `maeml export-onnx --weights SEGMENTER --out FILE` or SegmentationOnnxExporter with ImageSizeOutput = true " +
                                           "(SegmentImages serves the model-size class map of the older export)");
        model = new ServedDenseModel(host, file, modelFile, classNames, gpuDeviceId, fallbackToCpu);
        this.columns = columns;
    }

    /// <summary>The model's input size W x H (images are stretched to it; <c>maeml.image_size</c>, and <c>maeml.image_height</c> when not square).</summary>
    public InputSize ImageSize => model.ImageSize;

    /// <summary>The class names, in class-id order (key values of the predicted-label column).</summary>
    public IReadOnlyList<string> ClassNames => model.ClassNames;

    /// <summary>The fitted chain (nothing is learned: <paramref name="input"/> only gives the schema).</summary>
    public ITransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ServedDenseModel.CheckImage(input.Schema, columns.Image);
        return DenseScoring.FitSegmenter(model.Ml, input, model.Onnx, ClassNames, ImageSize, columns, model.Device, model.FallbackToCpu);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        ServedDenseModel.CheckImage(inputSchema, columns.Image);
        return DenseScoring.SegmenterOutputSchema(model.Ml, inputSchema, ImageSize, columns, ClassNames);
    }
}

/// <summary>What the scoring estimators (detector, segmenter, classifier) hold of an exported model: its bytes, input size, class names, the context that builds
/// the chain and the resolved ONNX Runtime device.</summary>
internal sealed class ServedDenseModel
{
    public ServedDenseModel(MLNetHost host, DenseScoring.DenseOnnxFile file, string modelFile, IReadOnlyList<string>? classNames, int? gpuDeviceId, bool fallbackToCpu)
    {
        ClassNames = DenseScoring.ClassNames(classNames, file, modelFile);
        ImageSize = file.ImageSize;
        Onnx = file.Bytes;
        FallbackToCpu = fallbackToCpu;
        Ml = host.NewContext(0);
        Device = OnnxDevice.Resolve(gpuDeviceId, fallbackToCpu, m => host.Log(m, LogLevel.Warning));
    }

    public MLContext Ml { get; }
    public byte[] Onnx { get; }
    public InputSize ImageSize { get; }
    public IReadOnlyList<string> ClassNames { get; }
    public int? Device { get; }
    public bool FallbackToCpu { get; }

    /// <summary>The image column of a data view: present and of an image type.</summary>
    public static void CheckImage(DataViewSchema schema, string name)
    {
        var image = schema.GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Could not find image column '{name}'");
        if (image.Type is not ImageDataViewType) throw new ArgumentOutOfRangeException(nameof(schema), $"Image column '{name}' must hold images (LoadImages), got {image.Type}");
    }

    /// <summary>The image column of a schema shape: present.</summary>
    public static void CheckImage(SchemaShape shape, string name)
    {
        if (!shape.Any(c => c.Name == name)) throw new ArgumentOutOfRangeException(nameof(shape), $"Could not find image column '{name}'");
    }
}

using MaeMl.Detection;
using MaeMl.Model;
using MaeMl.Segmentation;
using Microsoft.ML;
using Microsoft.ML.Transforms.Image;
using Microsoft.ML.Transforms.Onnx;

namespace MaeMl.MLNet;

/// <summary>ML.NET catalog extensions for the dense (segmentation) models of MaeMl.</summary>
public static class DenseCatalog
{
    /// <summary>Temporary column holding the resized image.</summary>
    public const string ResizedImageColumn = "MaeSegmentation.ResizedImage";

    /// <summary>
    /// Semantic segmentation of an image column with a model exported by <see cref="SegmentationOnnxExporter"/>: a chain of
    /// ML.NET's own estimators (<c>ResizeImages</c> to the model size W x H (squash), <c>ExtractPixels</c> as RGB planes 0..255,
    /// <c>ApplyOnnxModel</c>, <c>CopyColumns</c>, <c>DropColumns</c>), so the fitted model saves and loads with
    /// <c>mlContext.Model</c> without MaeMl. Output: <paramref name="outputColumnName"/>, a vector of H*W <see cref="long"/>
    /// class ids (row-major), and with <paramref name="probabilitiesColumnName"/> a vector of K*H*W floats (class-major).
    /// Superseded by <see cref="MaeSegmenterCatalog.ApplyMaeSegmenter"/> (class ids at the input image's size, size read from the
    /// model) and the <see cref="MaeSemanticSegmentationTrainer"/>; kept for the model-size class map and the probabilities.
    /// </summary>
    /// <param name="catalog">The transforms catalog (<c>mlContext.Transforms</c>).</param>
    /// <param name="outputColumnName">Column to create with the class map.</param>
    /// <param name="inputColumnName">Image column (<see cref="Microsoft.ML.Data.MLImage"/>).</param>
    /// <param name="modelFile">The exported segmentation ONNX file.</param>
    /// <param name="gpuDeviceId">CUDA device, or null for the CPU.</param>
    /// <param name="fallbackToCpu">Use the CPU when the GPU cannot be used.</param>
    /// <param name="imageSize">The model's input size W x H (maeml.image_size, and maeml.image_height when not square, in the model's metadata); an int is square.</param>
    /// <param name="probabilitiesColumnName">Column for the class probabilities, or null; the model must have been exported with them.</param>
    public static IEstimator<ITransformer> SegmentImages(this TransformsCatalog catalog, string outputColumnName, string inputColumnName, string modelFile,
        InputSize imageSize, string? probabilitiesColumnName = null, int? gpuDeviceId = null, bool fallbackToCpu = true)
    {
        if (!File.Exists(modelFile)) throw new FileNotFoundException($"Segmentation model '{modelFile}' does not exist", modelFile);
        var outputs = probabilitiesColumnName is null ? new[] { SegmentationOnnxNames.ClassMap } : new[] { SegmentationOnnxNames.ClassMap, SegmentationOnnxNames.Probabilities };
        IEstimator<ITransformer> chain = ImagePixels.Chain(catalog, inputColumnName, imageSize, ResizedImageColumn, SegmentationOnnxNames.Pixels, ImageResizingEstimator.ResizingKind.Fill)
            .Append(catalog.ApplyOnnxModel(new OnnxOptions
            {
                ModelFile = modelFile, InputColumns = [SegmentationOnnxNames.Pixels], OutputColumns = outputs, GpuDeviceId = OnnxDevice.Resolve(gpuDeviceId, fallbackToCpu), FallbackToCpu = fallbackToCpu,
            }))
            .Append(catalog.CopyColumns(outputColumnName, SegmentationOnnxNames.ClassMap));
        var drop = new List<string> { ResizedImageColumn, SegmentationOnnxNames.Pixels, SegmentationOnnxNames.ClassMap };
        if (probabilitiesColumnName is not null)
        {
            chain = chain.Append(catalog.CopyColumns(probabilitiesColumnName, SegmentationOnnxNames.Probabilities));
            drop.Add(SegmentationOnnxNames.Probabilities);
        }
        return chain.Append(catalog.DropColumns(drop.Where(d => d != outputColumnName && d != probabilitiesColumnName && d != inputColumnName).ToArray()));
    }
}

/// <summary>ML.NET catalog extensions for the MAE object-detection trainer.</summary>
public static class MaeObjectDetectionCatalog
{
    /// <summary>
    /// An object-detection trainer on a MAE ViT (simple feature pyramid + FCOS) with the columns of ML.NET's own object-detection
    /// trainer; see <see cref="MaeObjectDetectionTrainer"/>. Seed, log and cancellation come from the catalog's <see cref="MLContext"/>.
    /// </summary>
    /// <param name="catalog">The multiclass trainers catalog (<c>mlContext.MulticlassClassification.Trainers</c>).</param>
    /// <param name="labelColumnName">Vector of keys: the class of each box.</param>
    /// <param name="predictedLabelColumnName">Output: the class of each predicted box (keys of the label's type).</param>
    /// <param name="scoreColumnName">Output: the score of each predicted box, best first.</param>
    /// <param name="boundingBoxColumnName">Vector of floats, x0 y0 x1 y1 per box in pixels of the image.</param>
    /// <param name="predictedBoundingBoxColumnName">Output: x0 y0 x1 y1 per predicted box in pixels of the image.</param>
    /// <param name="imageColumnName">Image column (<see cref="Microsoft.ML.Data.MLImage"/>).</param>
    /// <param name="pretrainedEncoderFile">MAE / encoder file whose encoder initialises the ViT, or null for a random initialisation.</param>
    /// <param name="epochs">Training epochs.</param>
    /// <param name="batchSize">Images per step.</param>
    public static MaeObjectDetectionTrainer MaeObjectDetection(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label", string predictedLabelColumnName = "PredictedLabel", string scoreColumnName = "Score",
        string boundingBoxColumnName = "BoundingBoxes", string predictedBoundingBoxColumnName = "PredictedBoundingBoxes", string imageColumnName = "Image",
        string? pretrainedEncoderFile = null, int epochs = 20, int batchSize = 16) =>
        catalog.MaeObjectDetection(new MaeObjectDetectionOptions
        {
            LabelColumnName = labelColumnName, PredictedLabelColumnName = predictedLabelColumnName, ScoreColumnName = scoreColumnName,
            BoundingBoxColumnName = boundingBoxColumnName, PredictedBoundingBoxColumnName = predictedBoundingBoxColumnName, ImageColumnName = imageColumnName,
            PretrainedEncoderFile = pretrainedEncoderFile, Training = new Training.DenseTrainingOptions { Epochs = epochs, BatchSize = batchSize },
        });

    /// <summary>An object-detection trainer on a MAE ViT; see <see cref="MaeObjectDetectionOptions"/> for the settings.</summary>
    public static MaeObjectDetectionTrainer MaeObjectDetection(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        MaeObjectDetectionOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new MaeObjectDetectionTrainer(options, MLNetHost.FromCatalog(catalog, nameof(MaeObjectDetection), options.Logger));
    }

    /// <summary>An object-detection trainer on a MAE ViT; the context is the catalog's own (<paramref name="ml"/> is not needed).</summary>
    [Obsolete("Use mlContext.MulticlassClassification.Trainers.MaeObjectDetection(options): the trainer takes the catalog's own MLContext")]
    public static MaeObjectDetectionTrainer MaeObjectDetection(this MulticlassClassificationCatalog.MulticlassClassificationTrainers trainers, MLContext ml,
        MaeObjectDetectionOptions? options = null) =>
        trainers.MaeObjectDetection(options ?? new MaeObjectDetectionOptions());
}


/// <summary>ML.NET catalog extensions for the MAE semantic-segmentation trainer.</summary>
public static class MaeSemanticSegmentationCatalog
{
    /// <summary>
    /// A semantic-segmentation trainer on a MAE ViT (pyramid head): in, an image column and a mask column (both images, mask pixel =
    /// class id); out, <paramref name="predictedMaskColumnName"/>, the class ids at each input image's size. See
    /// <see cref="MaeSemanticSegmentationTrainer"/>. Seed, log and cancellation come from the catalog's <see cref="MLContext"/>.
    /// </summary>
    /// <param name="catalog">The multiclass trainers catalog (<c>mlContext.MulticlassClassification.Trainers</c>).</param>
    /// <param name="maskColumnName">Mask images (<see cref="Microsoft.ML.Data.MLImage"/>), pixel value = class id.</param>
    /// <param name="imageColumnName">Image column (<see cref="Microsoft.ML.Data.MLImage"/>).</param>
    /// <param name="predictedMaskColumnName">Output: variable-size vector of <see cref="uint"/> class ids, height x width of the input image.</param>
    /// <param name="pretrainedEncoderFile">MAE / encoder file or shipped model name whose encoder initialises the ViT, or null for a random initialisation.</param>
    /// <param name="numClasses">Classes (null: one more than the largest class id in the masks).</param>
    /// <param name="ignoreValue">Mask value of unlabelled pixels.</param>
    /// <param name="epochs">Training epochs.</param>
    /// <param name="batchSize">Images per step.</param>
    public static MaeSemanticSegmentationTrainer MaeSemanticSegmentation(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string maskColumnName = "Mask", string imageColumnName = "Image", string predictedMaskColumnName = "PredictedMask", string? pretrainedEncoderFile = null,
        int? numClasses = null, int ignoreValue = 255, int epochs = 20, int batchSize = 16) =>
        catalog.MaeSemanticSegmentation(new MaeSemanticSegmentationOptions
        {
            MaskColumnName = maskColumnName, ImageColumnName = imageColumnName, PredictedMaskColumnName = predictedMaskColumnName,
            PretrainedEncoderFile = pretrainedEncoderFile, NumClasses = numClasses, IgnoreValue = ignoreValue,
            Training = new Training.DenseTrainingOptions { Epochs = epochs, BatchSize = batchSize },
        });

    /// <summary>A semantic-segmentation trainer on a MAE ViT; see <see cref="MaeSemanticSegmentationOptions"/> for the settings.</summary>
    public static MaeSemanticSegmentationTrainer MaeSemanticSegmentation(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        MaeSemanticSegmentationOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new MaeSemanticSegmentationTrainer(options, MLNetHost.FromCatalog(catalog, nameof(MaeSemanticSegmentation), options.Logger));
    }
}

/// <summary>ML.NET transforms that apply an exported MaeMl detector.</summary>
public static class MaeDetectorCatalog
{
    /// <summary>
    /// The detector chain of <see cref="MaeObjectDetectionTrainer"/> over an exported detector file, without training: columns
    /// <paramref name="predictedLabelColumnName"/>, <paramref name="scoreColumnName"/> and <paramref name="predictedBoundingBoxColumnName"/>
    /// (pixels of the original image); see <see cref="MaeDetectorScoringEstimator"/>.
    /// </summary>
    /// <param name="catalog">The transforms catalog (<c>mlContext.Transforms</c>).</param>
    /// <param name="modelFile">The detector's ONNX file (<c>maeml export-onnx --weights det.model</c>, <see cref="DetectionOnnxExporter"/>).</param>
    /// <param name="classNames">Class names in class-index order (null: the file's <c>maeml.class_names</c>, else "0", "1", ...).</param>
    /// <param name="imageColumnName">Image column (<see cref="Microsoft.ML.Data.MLImage"/>).</param>
    /// <param name="predictedLabelColumnName">Output: the class of each box (variable-size vector of keys named by the classes).</param>
    /// <param name="scoreColumnName">Output: the score of each box, best first.</param>
    /// <param name="predictedBoundingBoxColumnName">Output: x0 y0 x1 y1 per box in pixels of the original image.</param>
    /// <param name="gpuDeviceId">CUDA device, or null for the CPU.</param>
    /// <param name="fallbackToCpu">Use the CPU when the GPU cannot be used.</param>
    public static MaeDetectorScoringEstimator ApplyMaeDetector(this TransformsCatalog catalog, string modelFile, IReadOnlyList<string>? classNames = null,
        string imageColumnName = "Image", string predictedLabelColumnName = "PredictedLabel", string scoreColumnName = "Score",
        string predictedBoundingBoxColumnName = "PredictedBoundingBoxes", int? gpuDeviceId = null, bool fallbackToCpu = true)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(modelFile);
        return new MaeDetectorScoringEstimator(MLNetHost.FromCatalog(catalog, nameof(ApplyMaeDetector)), modelFile, classNames,
            new DetectorColumns(imageColumnName, predictedLabelColumnName, scoreColumnName, predictedBoundingBoxColumnName), gpuDeviceId, fallbackToCpu);
    }
}

/// <summary>ML.NET transforms that apply an exported MaeMl segmenter.</summary>
public static class MaeSegmenterCatalog
{
    /// <summary>
    /// The segmenter chain of <see cref="MaeSemanticSegmentationTrainer"/> over an exported segmenter file (with the image-size class
    /// map, as <c>maeml export-onnx --weights seg.model</c> writes it), without training; see <see cref="MaeSegmenterScoringEstimator"/>.
    /// </summary>
    /// <param name="catalog">The transforms catalog (<c>mlContext.Transforms</c>).</param>
    /// <param name="modelFile">The segmenter's ONNX file.</param>
    /// <param name="classNames">Class names in class-id order (null: the file's <c>maeml.class_names</c>, else "0", "1", ...).</param>
    /// <param name="imageColumnName">Image column (<see cref="Microsoft.ML.Data.MLImage"/>).</param>
    /// <param name="predictedMaskColumnName">Output: variable-size vector of <see cref="uint"/> class ids, height x width of the input image.</param>
    /// <param name="predictedLabelColumnName">Output (or null for none): the same pixels as keys named by the classes.</param>
    /// <param name="gpuDeviceId">CUDA device, or null for the CPU.</param>
    /// <param name="fallbackToCpu">Use the CPU when the GPU cannot be used.</param>
    public static MaeSegmenterScoringEstimator ApplyMaeSegmenter(this TransformsCatalog catalog, string modelFile, IReadOnlyList<string>? classNames = null,
        string imageColumnName = "Image", string predictedMaskColumnName = "PredictedMask", string? predictedLabelColumnName = null,
        int? gpuDeviceId = null, bool fallbackToCpu = true)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(modelFile);
        return new MaeSegmenterScoringEstimator(MLNetHost.FromCatalog(catalog, nameof(ApplyMaeSegmenter)), modelFile, classNames,
            new SegmenterColumns(imageColumnName, predictedMaskColumnName, predictedLabelColumnName), gpuDeviceId, fallbackToCpu);
    }
}

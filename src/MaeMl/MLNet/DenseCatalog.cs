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
    /// ML.NET's own estimators (<c>ResizeImages</c> to the model size (squash), <c>ExtractPixels</c> as RGB planes 0..255,
    /// <c>ApplyOnnxModel</c>, <c>CopyColumns</c>, <c>DropColumns</c>), so the fitted model saves and loads with
    /// <c>mlContext.Model</c> without MaeMl. Output: <paramref name="outputColumnName"/>, a vector of S*S <see cref="long"/>
    /// class ids (row-major), and with <paramref name="probabilitiesColumnName"/> a vector of K*S*S floats (class-major).
    /// </summary>
    /// <param name="catalog">The transforms catalog (<c>mlContext.Transforms</c>).</param>
    /// <param name="outputColumnName">Column to create with the class map.</param>
    /// <param name="inputColumnName">Image column (<see cref="Microsoft.ML.Data.MLImage"/>).</param>
    /// <param name="modelFile">The exported segmentation ONNX file.</param>
    /// <param name="gpuDeviceId">CUDA device, or null for the CPU.</param>
    /// <param name="fallbackToCpu">Use the CPU when the GPU cannot be used.</param>
    /// <param name="imageSize">The model's input size (maeml.image_size in the model's metadata).</param>
    /// <param name="probabilitiesColumnName">Column for the class probabilities, or null; the model must have been exported with them.</param>
    public static IEstimator<ITransformer> SegmentImages(this TransformsCatalog catalog, string outputColumnName, string inputColumnName, string modelFile,
        int imageSize, string? probabilitiesColumnName = null, int? gpuDeviceId = null, bool fallbackToCpu = true)
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

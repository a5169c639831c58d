using Microsoft.ML;

namespace MaeMl.MLNet;

/// <summary>ML.NET multiclass-classification trainer extensions of MaeMl.</summary>
public static class MaeImageClassificationCatalog
{
    /// <summary>
    /// Fine-tunes a MAE ViT on an image column (<see cref="Microsoft.ML.Data.MLImage"/>, from <c>LoadImages</c>) and a label column
    /// (a key, or values it maps to keys itself), and returns ML.NET's usual <c>Score</c> and <c>PredictedLabel</c> columns. The fitted
    /// model is made of ML.NET transformers only (the ONNX model inside), so <c>mlContext.Model.Save</c>/<c>Load</c> round-trip.
    /// See <see cref="MaeImageClassificationEstimator"/>.
    /// </summary>
    /// <param name="catalog">The multiclass trainers catalog (<c>mlContext.MulticlassClassification.Trainers</c>).</param>
    /// <param name="labelColumnName">Label column.</param>
    /// <param name="imageColumnName">Image column.</param>
    /// <param name="startCheckpoint">MAE-pretrained weights (.maeml, .pth, safetensors).</param>
    /// <param name="epochs">Fine-tuning epochs.</param>
    /// <param name="batchSize">Images per step.</param>
    public static MaeImageClassificationEstimator MaeImageClassification(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName, string imageColumnName, string startCheckpoint, int epochs = 10, int batchSize = 32) =>
        catalog.MaeImageClassification(new MaeImageClassificationOptions
        {
            LabelColumnName = labelColumnName, ImageColumnName = imageColumnName, StartCheckpoint = startCheckpoint, Epochs = epochs, BatchSize = batchSize,
        });

    /// <summary>Fine-tunes a MAE ViT image classifier; see <see cref="MaeImageClassificationOptions"/> for the settings.</summary>
    public static MaeImageClassificationEstimator MaeImageClassification(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        MaeImageClassificationOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new MaeImageClassificationEstimator(options, MLNetHost.FromCatalog(catalog, nameof(MaeImageClassification), options.Logger));
    }
}

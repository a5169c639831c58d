using MaeMl.Checkpoints;
using MaeMl.Model;
using MaeMl.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using Google.Protobuf;

namespace MaeMl.MLNet;

/// <summary>ML.NET transforms that apply a fine-tuned MaeMl classifier.</summary>
public static class MaeClassifierCatalog
{
    /// <summary>
    /// The scoring chain of <see cref="MaeImageClassificationEstimator"/> over a classifier that was fine-tuned elsewhere
    /// (<c>maeml finetune</c>, <c>maeml linprobe</c>, a shipped model), without training: ML.NET's multiclass columns
    /// <paramref name="scoreColumnName"/> (softmax of the logits) and <paramref name="predictedLabelColumnName"/> (their arg-max, a key
    /// whose values are the class names); see <see cref="MaeClassifierScoringEstimator"/>.
    /// </summary>
    /// <param name="catalog">The transforms catalog (<c>mlContext.Transforms</c>).</param>
    /// <param name="modelFile">A MaeMl classifier checkpoint (<c>.maeml</c>, exported to ONNX in memory), its ONNX export
    /// (<c>maeml export-onnx --weights classifier.maeml</c>), or the name of a shipped classifier.</param>
    /// <param name="classNames">Class names in class-index order (null: the file's, else "0", "1", ...).</param>
    /// <param name="imageColumnName">Image column (<see cref="MLImage"/>).</param>
    /// <param name="scoreColumnName">Output: class probabilities.</param>
    /// <param name="predictedLabelColumnName">Output: the most probable class.</param>
    /// <param name="gpuDeviceId">CUDA device, or null for the CPU.</param>
    /// <param name="fallbackToCpu">Use the CPU when the GPU cannot be used.</param>
    public static MaeClassifierScoringEstimator ApplyMaeClassifier(this TransformsCatalog catalog, string modelFile, IReadOnlyList<string>? classNames = null,
        string imageColumnName = "Image", string scoreColumnName = "Score", string predictedLabelColumnName = "PredictedLabel",
        int? gpuDeviceId = null, bool fallbackToCpu = true)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(modelFile);
        return new MaeClassifierScoringEstimator(MLNetHost.FromCatalog(catalog, nameof(ApplyMaeClassifier)), modelFile, classNames, imageColumnName,
            scoreColumnName, predictedLabelColumnName, gpuDeviceId, fallbackToCpu);
    }
}

/// <summary>
/// Applies a fine-tuned MaeMl classifier to an image column without training: the chain <see cref="MaeImageClassificationEstimator.Fit"/>
/// returns (ML.NET's own transformers: resize + pixels, <c>ApplyOnnxModel</c> holding the model bytes, the multiclass scorer over the
/// logits, temporary columns dropped), so <c>mlContext.Model.Save</c>/<c>Load</c> work without MaeMl. The input size is the model's;
/// the class names are the caller's, else the file's (a checkpoint's class names, an export's <c>maeml.class_names</c>), else "0", "1", ...
/// Built by <see cref="MaeClassifierCatalog.ApplyMaeClassifier"/>.
/// </summary>
public sealed class MaeClassifierScoringEstimator : IEstimator<ITransformer>
{
    const string ResizedColumn = "MaeClassifier.ResizedImage";
    const string StandInLabel = "MaeClassifier.Label";
    readonly ServedDenseModel model;
    readonly string image, score, predicted;

    internal MaeClassifierScoringEstimator(MLNetHost host, string modelFile, IReadOnlyList<string>? classNames, string imageColumnName, string scoreColumnName,
        string predictedLabelColumnName, int? gpuDeviceId, bool fallbackToCpu)
    {
        var path = Pretrained.MaePretrained.ResolveExisting(modelFile, "classifier");
        DenseScoring.DenseOnnxFile file;
        if (MaeCheckpoint.IsCheckpoint(path))
        {
            var (vit, header) = ClassifierCheckpoint.Load(path);   // throws, naming the file, for a MAE or another checkpoint
            using (vit)
            {
                var stored = header.ClassNames.Count == vit.Config.NumClasses ? header.ClassNames : null;
                var onnx = VitEncoderOnnxExporter.BuildClassifier(vit, new VitEncoderOnnxOptions { ClassNames = stored }).ToByteArray();
                file = DenseScoring.ParseOnnx(onnx, path, VitEncoderOnnxExporter.ClassifierTask);   // the export's metadata, as from a file
            }
        }
        else file = DenseScoring.ReadOnnx(path, VitEncoderOnnxExporter.ClassifierTask);
        if (!file.Outputs.Contains(EncoderOnnxNames.Logits)) throw new InvalidDataException($"'{path}' has no output '{EncoderOnnxNames.Logits}': not a classifier exported by MaeMl");
        NumClasses = file.NumClasses;
        model = new ServedDenseModel(host, file, path, classNames, gpuDeviceId, fallbackToCpu);
        image = imageColumnName; score = scoreColumnName; predicted = predictedLabelColumnName;
    }

    /// <summary>The model's input size (images are centre-cropped and resized to it).</summary>
    public InputSize ImageSize => model.ImageSize;

    /// <summary>Classes of the head.</summary>
    public int NumClasses { get; }

    /// <summary>The class names the predicted keys carry, in class-index order.</summary>
    public IReadOnlyList<string> ClassNames => model.ClassNames;

    /// <summary>The fitted chain (nothing is learned: <paramref name="input"/> only gives the schema).</summary>
    public ITransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ServedDenseModel.CheckImage(input.Schema, image);
        return ClassifierScoring.Fit(model.Ml, input, model.Onnx, ClassNames, ImageSize, image, ResizedColumn, StandInLabel, score, predicted, model.Device, model.FallbackToCpu);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        ServedDenseModel.CheckImage(inputSchema, image);
        // Score is a float vector and PredictedLabel a scalar key of the classes: stand-in columns of those kinds give the shape (the class
        // name comes from a mapping that reads no column and only exists for the shape)
        var ml = model.Ml;
        var keyData = ml.Data.LoadFromEnumerable(ClassNames.Select(n => new KeyName { Name = n }));
        return ImagePixels.Chain(ml.Transforms, image, ImageSize, ResizedColumn, EncoderOnnxNames.Pixels, onto: new EstimatorChain<ITransformer>())
            .Append<ITransformer>(ml.Transforms.CopyColumns(score, EncoderOnnxNames.Pixels))
            .Append<ITransformer>(ml.Transforms.CustomMapping<NoColumns, KeyName>((_, _) => { }, contractName: null))
            .Append<ITransformer>(ml.Transforms.Conversion.MapValueToKey(predicted, nameof(KeyName.Name), keyData: keyData))
            .Append<ITransformer>(ml.Transforms.DropColumns(ResizedColumn, EncoderOnnxNames.Pixels, nameof(KeyName.Name)))
            .GetOutputSchema(inputSchema);
    }

    sealed class NoColumns { }
    sealed class KeyName { public string Name { get; set; } = ""; }
}

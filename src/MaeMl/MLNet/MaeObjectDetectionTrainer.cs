using MaeMl.Detection;
using MaeMl.Interop;
using MaeMl.Model;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Microsoft.ML.Transforms.Onnx;
using SkiaSharp;

namespace MaeMl.MLNet;

/// <summary>
/// ML.NET trainer for object detection with a MAE ViT (ViTDet simple feature pyramid + FCOS): <see cref="Fit"/> reads the
/// images, box labels (keys) and boxes (x0 y0 x1 y1) of the data view, trains in TorchSharp, exports the model with its
/// post-processing (ONNX NonMaxSuppression) and returns a chain of ML.NET's own transformers (<c>ResizeImages</c>,
/// <c>ExtractPixels</c>, <c>ApplyOnnxModel</c>, <c>MapValue</c> + <c>MapValueToKey</c> for the predicted keys, copies and
/// drops), which <c>mlContext.Model.Save</c>/<c>Load</c> handle without MaeMl. The outputs have the columns of ML.NET's own
/// object-detection trainer: <c>PredictedLabel</c> (keys of the label's key type), <c>Score</c> and
/// <c>PredictedBoundingBoxes</c>, here in pixels of the model's S x S input (scale by width/S, height/S for the image).
/// Training holds the images in memory at the model's size.
/// </summary>
public sealed class MaeObjectDetectionTrainer(MLContext ml, MaeObjectDetectionOptions options) : IEstimator<ITransformer>
{
    const string Prefix = "MaeDetection.";

    /// <summary>The last trained model (disposed by the caller), for evaluation or saving with <see cref="Heads.DenseModelFile"/>.</summary>
    public DetectionModel? TrainedModel { get; private set; }

    public ITransformer Fit(IDataView input)
    {
        var o = options;
        var schema = input.Schema;
        var label = schema.GetColumnOrNull(o.LabelColumnName) ?? throw new ArgumentOutOfRangeException(nameof(input), $"Could not find label column '{o.LabelColumnName}'");
        if (label.Type is not VectorDataViewType { ItemType: KeyDataViewType keyType })
            throw new ArgumentOutOfRangeException(nameof(input), $"Label column '{o.LabelColumnName}' must be a vector of keys (MapValueToKey on the box class names), got {label.Type}");
        var image = schema.GetColumnOrNull(o.ImageColumnName) ?? throw new ArgumentOutOfRangeException(nameof(input), $"Could not find image column '{o.ImageColumnName}'");
        if (image.Type is not ImageDataViewType) throw new ArgumentOutOfRangeException(nameof(input), $"Image column '{o.ImageColumnName}' must hold images (LoadImages), got {image.Type}");
        var box = schema.GetColumnOrNull(o.BoundingBoxColumnName) ?? throw new ArgumentOutOfRangeException(nameof(input), $"Could not find bounding-box column '{o.BoundingBoxColumnName}'");
        int numClasses = (int)keyType.Count;
        var names = new VBuffer<ReadOnlyMemory<char>>();
        List<string> classNames;
        if (label.HasKeyValues()) { label.GetKeyValues(ref names); classNames = names.DenseValues().Select(v => v.ToString()).ToList(); }
        else classNames = Enumerable.Range(1, numClasses).Select(i => i.ToString()).ToList();

        // ---- read the rows
        var bitmaps = new List<SKBitmap>();
        var boxes = new List<BoxAnnotation[]>();
        try
        {
            using (var cursor = input.GetRowCursor([label, image, box]))
            {
                var getLabels = cursor.GetGetter<VBuffer<uint>>(label);
                var getImage = cursor.GetGetter<MLImage>(image);
                var getBoxes = cursor.GetGetter<VBuffer<float>>(box);
                VBuffer<uint> keys = default; VBuffer<float> coords = default; MLImage img = null!;
                while (cursor.MoveNext())
                {
                    getLabels(ref keys); getBoxes(ref coords); getImage(ref img);
                    var k = keys.DenseValues().ToArray();
                    var c = coords.DenseValues().ToArray();
                    if (c.Length != 4 * k.Length) throw new InvalidDataException($"Row {cursor.Position}: {k.Length} labels but {c.Length} box values (need 4 per label: x0 y0 x1 y1)");
                    boxes.Add(k.Select((key, i) => new BoxAnnotation(c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3], (int)key - 1)).Where(b => b.Label >= 0).ToArray());
                    bitmaps.Add(ToBitmap(img));
                }
            }
            if (bitmaps.Count == 0) throw new InvalidDataException("The training data has no rows");

            // ---- train
            var config = new DetectionConfig(o.Encoder, numClasses, o.PyramidChannels, o.PyramidScales, o.HeadConvs)
            { ScoreThreshold = o.ScoreThreshold, NmsIoU = o.NmsIoU, MaxDetections = o.MaxDetectionsPerClass };
            var model = new DetectionModel(config);
            if (o.PretrainedEncoderFile is not null)
            {
                using var mae = MaeModelFile.LoadMae(o.PretrainedEncoderFile, new MaeLoadOptions { AllowMissingDecoder = true });
                model.Vit.LoadEncoder(mae.state_dict().Where(kv => MaskedAutoencoderViT.IsEncoderKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value));
            }
            using (var data = DetectionDataset.FromBitmaps(bitmaps, boxes, classNames, o.Encoder.ImageSize))
                DetectionTrainer.Train(model, data, o.Training, o.Log);
            model.eval();
            TrainedModel?.Dispose();
            TrainedModel = model;
            var onnx = o.OnnxModelFile ?? Path.Combine(Path.GetTempPath(), $"maeml-detector-{Guid.NewGuid():N}.onnx");
            DetectionOnnxExporter.Export(model, onnx);
            return Chain(onnx, classNames).Fit(input);
        }
        finally { foreach (var b in bitmaps) b.Dispose(); }
    }

    /// <summary>The inference chain over an exported detector, predicted keys numbered as <paramref name="classNames"/>.</summary>
    IEstimator<ITransformer> Chain(string onnx, List<string> classNames)
    {
        var o = options;
        var t = ml.Transforms;
        int size = o.Encoder.ImageSize;
        string resized = Prefix + "Resized", names = Prefix + "LabelNames";
        var lookup = ml.Data.LoadFromEnumerable(classNames.Select((n, i) => new LabelLookup { Index = i, Name = n }));
        var keyData = ml.Data.LoadFromEnumerable(classNames.Select(n => new KeyName { Name = n }));
        IEstimator<ITransformer> chain = t.ResizeImages(resized, size, size, o.ImageColumnName, ImageResizingEstimator.ResizingKind.Fill)
            .Append(t.ExtractPixels(DetectionOnnxNames.Pixels, resized, ImagePixelExtractingEstimator.ColorBits.Rgb, ImagePixelExtractingEstimator.ColorsOrder.ARGB,
                interleavePixelColors: false, offsetImage: 0f, scaleImage: 1f, outputAsFloatArray: true))
            .Append(t.ApplyOnnxModel(new OnnxOptions
            {
                ModelFile = onnx, InputColumns = [DetectionOnnxNames.Pixels],
                OutputColumns = [DetectionOnnxNames.Boxes, DetectionOnnxNames.Scores, DetectionOnnxNames.Labels],
            }))
            .Append(t.Conversion.MapValue(names, lookup, lookup.Schema[nameof(LabelLookup.Index)], lookup.Schema[nameof(LabelLookup.Name)], DetectionOnnxNames.Labels))
            .Append(t.Conversion.MapValueToKey(o.PredictedLabelColumnName, names, keyData: keyData))
            .Append(t.CopyColumns(o.ScoreColumnName, DetectionOnnxNames.Scores))
            .Append(t.CopyColumns(o.PredictedBoundingBoxColumnName, DetectionOnnxNames.Boxes));
        return chain.Append(t.DropColumns(resized, DetectionOnnxNames.Pixels, DetectionOnnxNames.Boxes, DetectionOnnxNames.Scores, DetectionOnnxNames.Labels, names));
    }

    sealed class LabelLookup { public long Index { get; set; } public string Name { get; set; } = ""; }
    sealed class KeyName { public string Name { get; set; } = ""; }

    static SKBitmap ToBitmap(MLImage image)
    {
        var info = new SKImageInfo(image.Width, image.Height, image.PixelFormat == MLPixelFormat.Bgra32 ? SKColorType.Bgra8888 : SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var source = new SKBitmap(info);
        var pixels = image.Pixels.ToArray();
        System.Runtime.InteropServices.Marshal.Copy(pixels, 0, source.GetPixels(), Math.Min(pixels.Length, info.BytesSize));
        if (info.ColorType == SKColorType.Rgba8888) return source;
        var rgba = new SKBitmap(new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        source.CopyTo(rgba, SKColorType.Rgba8888);
        source.Dispose();
        return rgba;
    }

    /// <summary>The output columns, from the same chain over a stand-in ONNX file with the detector's inputs and outputs.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        foreach (var name in new[] { options.LabelColumnName, options.ImageColumnName, options.BoundingBoxColumnName })
            if (!inputSchema.Any(c => c.Name == name)) throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Could not find input column '{name}'");
        var stub = Path.Combine(Path.GetTempPath(), $"maeml-detector-schema-{Guid.NewGuid():N}.onnx");
        try
        {
            var g = new Onnx.OnnxGraphBuilder("maeml_detector_schema");
            int s = options.Encoder.ImageSize;
            g.Input(DetectionOnnxNames.Pixels, "batch", 3, s, s);
            g.Output(g.Node("Identity", [g.Initializer("no_boxes", ReadOnlySpan<float>.Empty, 0, 4)], "boxes"), DetectionOnnxNames.Boxes, "detections", 4);
            g.Output(g.Node("Identity", [g.Initializer("no_scores", ReadOnlySpan<float>.Empty, 0)], "scores"), DetectionOnnxNames.Scores, "detections");
            var noLabels = g.Node("Cast", [g.Initializer("no_labels", ReadOnlySpan<float>.Empty, 0)], "labels", Onnx.OnnxGraphBuilder.Attr("to", 7L));
            g.Output(noLabels, DetectionOnnxNames.Labels, global::Onnx.TensorProto.Types.DataType.Int64, "detections");
            Onnx.VitEncoderOnnxExporter.Save(g.ToModel(17), stub);
            return Chain(stub, ["class"]).GetOutputSchema(inputSchema);
        }
        finally { File.Delete(stub); }
    }
}

using MaeMl.Detection;
using MaeMl.Interop;
using MaeMl.Model;
using Microsoft.Extensions.Logging;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using static TorchSharp.torch;

namespace MaeMl.MLNet;

/// <summary>
/// ML.NET trainer for object detection with a MAE ViT (ViTDet simple feature pyramid + FCOS), with the columns of ML.NET's own
/// object-detection trainer: in, <c>Label</c> (vector of keys, one per box), <c>BoundingBoxes</c> (x0 y0 x1 y1 per box, pixels
/// of the image) and <c>Image</c>; out, <c>PredictedLabel</c> (variable-size vector of keys of the label's key type),
/// <c>Score</c> (variable-size float vector, best first) and <c>PredictedBoundingBoxes</c> (variable-size float vector, 4 per
/// box, pixels of the original image). <see cref="Fit"/> stretches the images to the model's S x S size with the chain's own
/// <c>ResizeImages</c> + <c>ExtractPixels</c> (so training sees the pixels the model is served), trains in TorchSharp, exports
/// the model with its post-processing (<see cref="DetectionOnnxExporter"/>: score threshold, class-wise NMS, at most
/// <see cref="MaeObjectDetectionOptions.MaxDetections"/> boxes an image, boxes scaled back to the image) and returns a chain
/// of ML.NET transformers: <c>CopyColumns</c>, a <c>CustomMapping</c> giving the image size
/// (<see cref="ImageSizeMappingFactory"/>, which <c>Model.Load</c> finds in MaeMl.dll by itself), <c>ResizeImages</c>,
/// <c>ExtractPixels</c>, <c>ApplyOnnxModel</c>, <c>MapValue</c> + <c>MapValueToKey</c> for the predicted keys, copies and
/// drops. <see cref="Predict"/> runs the trained TorchSharp model on the same pixels and gives the same detections.
/// Training holds the images in memory at the model's size. Seed, log and cancellation come from the <see cref="MLContext"/> the
/// catalog belongs to (<see cref="MaeObjectDetectionCatalog"/>); the device of <c>ApplyOnnxModel</c> is resolved by
/// <see cref="OnnxDevice"/>, so <see cref="MaeDenseTrainerOptions.FallbackToCpu"/> also holds with the CPU-only ONNX Runtime.
/// </summary>
public sealed class MaeObjectDetectionTrainer : IEstimator<ITransformer>
{
    readonly MaeObjectDetectionOptions options;
    readonly MLNetHost host;
    readonly MLContext ml;
    readonly int seed;

    internal MaeObjectDetectionTrainer(MaeObjectDetectionOptions options, MLNetHost host)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.options = options;
        this.host = host;
        seed = options.Seed ?? host.NextSeed();
        ml = host.NewContext(seed);
    }

    /// <summary>A trainer on <paramref name="ml"/>'s seed, log and cancellation.</summary>
    [Obsolete("Use mlContext.MulticlassClassification.Trainers.MaeObjectDetection(options)")]
    public MaeObjectDetectionTrainer(MLContext ml, MaeObjectDetectionOptions options)
        : this(options, MLNetHost.FromCatalog((ml ?? throw new ArgumentNullException(nameof(ml))).MulticlassClassification.Trainers,
            nameof(MaeObjectDetectionCatalog.MaeObjectDetection), options?.Logger)) { }

#pragma warning disable CS0618 // the obsolete string callback is still honoured for one release
    void Log(string message, LogLevel level = LogLevel.Information)
    {
        host.Log(message, level);
        options.Log?.Invoke(message);
    }
#pragma warning restore CS0618

    /// <summary>The last trained model (disposed by the caller), for evaluation or saving with <see cref="DetectionModelFile"/>.</summary>
    public DetectionModel? TrainedModel { get; private set; }

    DetectionConfig Config(int numClasses) => new(options.Encoder, numClasses, options.PyramidChannels, options.PyramidScales, options.HeadConvs)
        { ScoreThreshold = options.ScoreThreshold, NmsIoU = options.NmsIoU, MaxDetections = options.MaxDetections, Attention = options.Attention };

    /// <summary>Trains on the rows of <paramref name="input"/> and returns the fitted chain of ML.NET transformers.</summary>
    /// <exception cref="OperationCanceledException">The catalog's <see cref="MLContext"/> or <see cref="MaeDenseTrainerOptions.CancellationToken"/>
    /// was cancelled (checked before training and before every step).</exception>
    public ITransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var o = options;
        var schema = input.Schema;
        var label = schema.GetColumnOrNull(o.LabelColumnName) ?? throw new ArgumentOutOfRangeException(nameof(input), $"Could not find label column '{o.LabelColumnName}'");
        if (label.Type is not VectorDataViewType { ItemType: KeyDataViewType keyType })
            throw new ArgumentOutOfRangeException(nameof(input), $"Label column '{o.LabelColumnName}' must be a vector of keys (MapValueToKey on the box class names), got {label.Type}");
        var image = schema.GetColumnOrNull(o.ImageColumnName) ?? throw new ArgumentOutOfRangeException(nameof(input), $"Could not find image column '{o.ImageColumnName}'");
        if (image.Type is not ImageDataViewType) throw new ArgumentOutOfRangeException(nameof(input), $"Image column '{o.ImageColumnName}' must hold images (LoadImages), got {image.Type}");
        if (schema.GetColumnOrNull(o.BoundingBoxColumnName) is null) throw new ArgumentOutOfRangeException(nameof(input), $"Could not find bounding-box column '{o.BoundingBoxColumnName}'");
        int numClasses = (int)keyType.Count;
        var names = new VBuffer<ReadOnlyMemory<char>>();
        List<string> classNames;
        if (label.HasKeyValues()) { label.GetKeyValues(ref names); classNames = names.DenseValues().Select(v => v.ToString()).ToList(); }
        else classNames = Enumerable.Range(1, numClasses).Select(i => i.ToString()).ToList();
        var config = Config(numClasses).Validate();
        using var cancel = DenseFit.Start(host, o);

        // ---- read the rows through the chain's own preprocessing
        int size = o.Encoder.ImageSize;
        var (pixels, sizes) = ReadPixels(input);
        var boxes = ReadBoxes(input, o.LabelColumnName, o.BoundingBoxColumnName);
        if (boxes.Count == 0) throw new InvalidDataException("The training data has no rows");
        var scaled = boxes.Select((bs, i) => bs.Select(b => b.Transform((float)size / sizes[i].Width, (float)size / sizes[i].Height)).ToArray()).ToList();

        // ---- train
        var model = DenseFit.Train(o, seed, () => new DetectionModel(config), m => m.Vit, m =>
        {
            using var data = DetectionDataset.FromPixels(pixels, scaled, classNames, size);
            return DetectionTrainer.Train(m, data, o.Training with { Seed = seed }, msg => Log(msg), cancel.Token);
        }, msg => Log(msg));
        TrainedModel?.Dispose();
        TrainedModel = model;
        var onnx = Google.Protobuf.MessageExtensions.ToByteArray(DetectionOnnxExporter.Build(model, classNames));
        var device = DenseFit.Serve(o, onnx, "exported the detector with its post-processing to ONNX", Log);
        return DenseScoring.FitDetector(ml, input, onnx, classNames, size, Columns, device, o.FallbackToCpu);
    }

    /// <summary>
    /// The detections of <see cref="TrainedModel"/> for the rows of <paramref name="input"/>, computed in TorchSharp
    /// (<see cref="FcosPostprocess"/>) on the pixels of the chain's own preprocessing, boxes in pixels of the original images:
    /// what the fitted ML.NET model returns, up to float rounding.
    /// </summary>
    public List<DetectedBox[]> Predict(IDataView input, int batchSize = 16)
    {
        var model = TrainedModel ?? throw new InvalidOperationException("Fit the trainer first");
        int size = model.Config.Encoder.ImageSize;
        var (pixels, sizes) = ReadPixels(input);
        using var data = DetectionDataset.FromPixels(pixels, sizes.Select(_ => Array.Empty<BoxAnnotation>()).ToList(), Enumerable.Range(0, model.Config.NumClasses).Select(i => i.ToString()).ToList(), size);
        model.eval();
        using var _ = no_grad();
        var result = new List<DetectedBox[]>();
        for (int i = 0; i < sizes.Count; i += batchSize)
        {
            using var scope = NewDisposeScope();
            int end = Math.Min(sizes.Count, i + batchSize);
            using var output = model.forward(data.Images[TensorIndex.Slice(i, end)]);
            result.AddRange(FcosPostprocess.Decode(model, output, sizes.Skip(i).Take(end - i).ToList()));
        }
        return result;
    }

    /// <summary>
    /// COCO-style AP (<see cref="DetectionMetrics"/>) of a scored view: the ground truth in the label and bounding-box columns,
    /// the detections in the predicted-label, score and predicted-box columns, all in pixels of the original images.
    /// </summary>
    public DetectionEvaluation Evaluate(IDataView scored)
    {
        var o = options;
        var label = scored.Schema[o.LabelColumnName];
        if (label.Type is not VectorDataViewType { ItemType: KeyDataViewType keyType }) throw new ArgumentOutOfRangeException(nameof(scored), $"Label column '{o.LabelColumnName}' must be a vector of keys");
        var truth = ReadBoxes(scored, o.LabelColumnName, o.BoundingBoxColumnName);
        var predicted = ReadBoxes(scored, o.PredictedLabelColumnName, o.PredictedBoundingBoxColumnName, o.ScoreColumnName)
            .Select(bs => bs.Select(b => new DetectedBox(b.X0, b.Y0, b.X1, b.Y1, b.Label, b.Score)).ToArray()).ToList();
        return DetectionMetrics.Evaluate(predicted, truth, (int)keyType.Count, o.MaxDetections);
    }

    /// <summary>Boxes of every row from a key-vector column and a 4-per-key float column (and a score column); key 0 (missing) is skipped.</summary>
    static List<(float X0, float Y0, float X1, float Y1, int Label, float Score)[]> ReadBoxesWithScores(IDataView view, string keys, string coords, string? scores)
    {
        var columns = new List<DataViewSchema.Column> { view.Schema[keys], view.Schema[coords] };
        if (scores is not null) columns.Add(view.Schema[scores]);
        var result = new List<(float, float, float, float, int, float)[]>();
        using var cursor = view.GetRowCursor(columns);
        var getKeys = cursor.GetGetter<VBuffer<uint>>(columns[0]);
        var getCoords = cursor.GetGetter<VBuffer<float>>(columns[1]);
        var getScores = scores is null ? null : cursor.GetGetter<VBuffer<float>>(columns[2]);
        VBuffer<uint> k = default; VBuffer<float> c = default, s = default;
        while (cursor.MoveNext())
        {
            getKeys(ref k); getCoords(ref c); getScores?.Invoke(ref s);
            var kv = k.DenseValues().ToArray();
            var cv = c.DenseValues().ToArray();
            var sv = scores is null ? new float[kv.Length] : s.DenseValues().ToArray();
            if (cv.Length != 4 * kv.Length || sv.Length != kv.Length)
                throw new InvalidDataException($"Row {cursor.Position}: {kv.Length} labels but {cv.Length} box values (need 4 per label: x0 y0 x1 y1){(scores is null ? "" : $" and {sv.Length} scores")}");
            result.Add(Enumerable.Range(0, kv.Length).Where(i => kv[i] > 0)
                .Select(i => (cv[4 * i], cv[4 * i + 1], cv[4 * i + 2], cv[4 * i + 3], (int)kv[i] - 1, sv[i])).ToArray());
        }
        return result;
    }

    static List<BoxAnnotation[]> ReadBoxes(IDataView view, string keys, string coords) =>
        ReadBoxesWithScores(view, keys, coords, null).Select(bs => bs.Select(b => new BoxAnnotation(b.X0, b.Y0, b.X1, b.Y1, b.Label)).ToArray()).ToList();

    static List<(float X0, float Y0, float X1, float Y1, int Label, float Score)[]> ReadBoxes(IDataView view, string keys, string coords, string scores) =>
        ReadBoxesWithScores(view, keys, coords, scores);

    /// <summary>The model-size RGB planes (0..255) and the original (width, height) of every row, through the chain's preprocessing.</summary>
    (float[] Pixels, List<(int Width, int Height)> Sizes) ReadPixels(IDataView input)
    {
        var view = DenseScoring.FitPreprocessing(ml, input, options.ImageColumnName, options.Encoder.ImageSize, DenseScoring.DetectionResized).Transform(input);
        int plane = 3 * options.Encoder.ImageSize * options.Encoder.ImageSize;
        var pixels = new List<float>();
        var sizes = new List<(int, int)>();
        var columns = new[] { view.Schema[DetectionOnnxNames.Pixels], view.Schema[DetectionOnnxNames.ImageSize] };
        using var cursor = view.GetRowCursor(columns);
        var getPixels = cursor.GetGetter<VBuffer<float>>(columns[0]);
        var getSize = cursor.GetGetter<VBuffer<float>>(columns[1]);
        VBuffer<float> p = default, s = default;
        while (cursor.MoveNext())
        {
            getPixels(ref p); getSize(ref s);
            if (p.Length != plane) throw new InvalidDataException($"Row {cursor.Position}: {p.Length} pixel values, expected {plane}");
            pixels.AddRange(p.DenseValues());
            var wh = s.DenseValues().ToArray();
            sizes.Add(((int)wh[0], (int)wh[1]));
        }
        return (pixels.ToArray(), sizes);
    }

    DetectorColumns Columns => new(options.ImageColumnName, options.PredictedLabelColumnName, options.ScoreColumnName, options.PredictedBoundingBoxColumnName);

    /// <summary>The output columns, from the chain's built-in estimators over a stand-in ONNX file with the detector's outputs
    /// (the image-size mapping adds a column the chain drops again, so it is left out here).</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        foreach (var name in new[] { options.LabelColumnName, options.ImageColumnName, options.BoundingBoxColumnName })
            if (!inputSchema.Any(c => c.Name == name)) throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Could not find input column '{name}'");
        return DenseScoring.DetectorOutputSchema(ml, inputSchema, options.Encoder.ImageSize, Columns, ["class"]);
    }
}

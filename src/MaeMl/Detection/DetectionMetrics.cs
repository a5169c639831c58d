namespace MaeMl.Detection;

/// <summary>COCO-style detection results: AP averaged over IoU 0.50:0.05:0.95 (mAP), at 0.50 (AP50) and 0.75 (AP75), per class.</summary>
/// <param name="MAP">AP averaged over IoU 0.50:0.05:0.95 and the classes with ground truth.</param>
/// <param name="AP50">AP at IoU 0.50.</param>
/// <param name="AP75">AP at IoU 0.75.</param>
/// <param name="GroundTruthBoxes">Ground-truth boxes evaluated.</param>
/// <param name="Detections">Detections evaluated (after the per-image cap).</param>
/// <param name="PerClassAP">AP@[.5:.95] per class, NaN for classes without ground truth (left out of the means).</param>
public sealed record DetectionEvaluation(double MAP, double AP50, double AP75, double[] PerClassAP, int GroundTruthBoxes, int Detections);

/// <summary>What the detections shown at one score threshold are (Hoiem et al.'s error diagnosis, simplified): boxes that find an
/// object, second boxes on an object already found (the clusters), other false positives, and the objects no box finds.</summary>
/// <param name="MinScore">Detections scoring at least this were counted (what a picture draws).</param>
/// <param name="Detections">Detections at or above <paramref name="MinScore"/>.</param>
/// <param name="TruePositives">Detections matched, best score first, to a ground-truth box of their class at IoU &gt;= 0.5.</param>
/// <param name="Duplicates">Unmatched detections overlapping (IoU &gt;= 0.1) a ground-truth box of their class that another detection matched.</param>
/// <param name="OtherFalsePositives">The remaining unmatched detections (background, poor localisation, wrong class).</param>
/// <param name="Missed">Ground-truth boxes no detection matched.</param>
public sealed record DetectionBreakdown(float MinScore, int Detections, int TruePositives, int Duplicates, int OtherFalsePositives, int Missed);

/// <summary>
/// COCO-style average precision (as pycocotools' bbox evaluation, without area ranges or crowd regions): per class and
/// IoU threshold, detections sorted by score (at most <c>maxDetections</c> per image) are greedily matched to the
/// unmatched ground-truth box of highest IoU &gt;= threshold in the same image; precision is made monotone and sampled
/// at 101 recall points (0, 0.01, .., 1). Classes without ground truth are left out.
/// </summary>
public static class DetectionMetrics
{
    /// <summary>COCO's IoU thresholds 0.50, 0.55, ..., 0.95.</summary>
    public static readonly double[] IoUThresholds = Enumerable.Range(0, 10).Select(i => 0.5 + 0.05 * i).ToArray();

    /// <summary>COCO-style average precision (101-point interpolation, per class then averaged) over the IoU thresholds, keeping at most <paramref name="maxDetections"/> detections per image.</summary>
    public static DetectionEvaluation Evaluate(IReadOnlyList<DetectedBox[]> predictions, IReadOnlyList<BoxAnnotation[]> groundTruth, int numClasses, int maxDetections = 100)
    {
        if (predictions.Count != groundTruth.Count) throw new ArgumentException($"{predictions.Count} prediction lists for {groundTruth.Count} images");
        var ap = new double[numClasses, IoUThresholds.Length];
        var perClass = new double[numClasses];
        var preds = predictions.Select(p => p.OrderByDescending(b => b.Score).Take(maxDetections).ToArray()).ToArray();
        for (int c = 0; c < numClasses; c++)
        {
            int nGt = groundTruth.Sum(g => g.Count(b => b.Label == c));
            if (nGt == 0) { perClass[c] = double.NaN; for (int t = 0; t < IoUThresholds.Length; t++) ap[c, t] = double.NaN; continue; }
            var dets = preds.SelectMany((p, img) => p.Where(b => b.Label == c).Select(b => (Image: img, Box: b)))
                .OrderByDescending(x => x.Box.Score).ToArray();   // stable: ties keep image order
            for (int t = 0; t < IoUThresholds.Length; t++)
                ap[c, t] = AveragePrecision(dets, groundTruth, nGt, IoUThresholds[t]);
            perClass[c] = Enumerable.Range(0, IoUThresholds.Length).Average(t => ap[c, t]);
        }
        double Mean(Func<int, double> f) { var v = Enumerable.Range(0, numClasses).Select(f).Where(x => !double.IsNaN(x)).ToArray(); return v.Length == 0 ? 0 : v.Average(); }
        return new DetectionEvaluation(Mean(c => perClass[c]), Mean(c => ap[c, 0]), Mean(c => ap[c, 5]), perClass,
            groundTruth.Sum(g => g.Length), preds.Sum(p => p.Length));
    }

    /// <summary>The <see cref="DetectionBreakdown"/> of the detections scoring at least <paramref name="minScore"/>: per image and class,
    /// detections by descending score take the unmatched ground-truth box of highest IoU &gt;= 0.5; an unmatched one is a duplicate when it
    /// overlaps (IoU &gt;= 0.1) a box that was matched.</summary>
    public static DetectionBreakdown Breakdown(IReadOnlyList<DetectedBox[]> predictions, IReadOnlyList<BoxAnnotation[]> groundTruth, float minScore)
    {
        if (predictions.Count != groundTruth.Count) throw new ArgumentException($"{predictions.Count} prediction lists for {groundTruth.Count} images");
        int detections = 0, tp = 0, duplicates = 0, other = 0, missed = 0;
        for (int img = 0; img < predictions.Count; img++)
        {
            var gts = groundTruth[img];
            var matched = new bool[gts.Length];
            var unmatched = new List<DetectedBox>();
            foreach (var box in predictions[img].Where(b => b.Score >= minScore).OrderByDescending(b => b.Score))
            {
                detections++;
                int best = BestMatch(box, gts, matched, 0.5);
                if (best >= 0) { matched[best] = true; tp++; }
                else unmatched.Add(box);
            }
            foreach (var box in unmatched)
            {
                bool duplicate = Enumerable.Range(0, gts.Length).Any(g => matched[g] && gts[g].Label == box.Label && BoxOps.IoU(box, gts[g]) >= 0.1);
                if (duplicate) duplicates++; else other++;
            }
            missed += matched.Count(m => !m);
        }
        return new DetectionBreakdown(minScore, detections, tp, duplicates, other, missed);
    }

    /// <summary>The unmatched ground-truth box of <paramref name="box"/>'s class with the highest IoU &gt;= <paramref name="threshold"/>
    /// (the last of equal ones, as pycocotools), or -1.</summary>
    static int BestMatch(DetectedBox box, BoxAnnotation[] gts, bool[] matched, double threshold)
    {
        int best = -1;
        double bestIoU = threshold;
        for (int g = 0; g < gts.Length; g++)
        {
            if (gts[g].Label != box.Label || matched[g]) continue;
            double iou = BoxOps.IoU(box, gts[g]);
            if (iou >= bestIoU) { bestIoU = iou; best = g; }
        }
        return best;
    }

    static double AveragePrecision((int Image, DetectedBox Box)[] dets, IReadOnlyList<BoxAnnotation[]> groundTruth, int nGt, double threshold)
    {
        var matched = groundTruth.Select(g => new bool[g.Length]).ToArray();
        var recall = new double[dets.Length];
        var precision = new double[dets.Length];
        int tp = 0;
        for (int i = 0; i < dets.Length; i++)
        {
            var (img, box) = dets[i];
            int best = BestMatch(box, groundTruth[img], matched[img], threshold);
            if (best >= 0) { matched[img][best] = true; tp++; }
            recall[i] = (double)tp / nGt;
            precision[i] = (double)tp / (i + 1);
        }
        for (int i = dets.Length - 2; i >= 0; i--) precision[i] = Math.Max(precision[i], precision[i + 1]);
        double sum = 0;
        for (int r = 0; r <= 100; r++)
        {
            double level = r / 100.0;
            int idx = Array.FindIndex(recall, x => x >= level - 1e-12);   // searchsorted(recall, level, 'left')
            if (idx >= 0) sum += precision[idx];
        }
        return sum / 101;
    }
}
